# The paper's Table 2 models as `sinkbench init` shapes (from each model's config.json on the
# Hugging Face hub), sourced by bench/table2_timing.sh (CPU) and bench/gpu/table2_gpu.sh:
#   table2_shape NAME  ->  "layers|cache|vocab|init flags of one layer's shape"
# cache: the Table 2 cache (K+W), the model's pre-training window.
table2_shape() {
    case $1 in
    llama2-7b) echo "32|4096|32000|--dim 4096 --heads 32 --ffn 11008 --ctx 4096" ;;
    falcon-7b) echo "32|2048|65024|--dim 4544 --heads 71 --kv-heads 1 --ffn 18176 --ctx 2048 --norm layer --norm-bias --norm-eps 1e-5 --mlp gelu --act gelu --parallel --shared-norm --tie" ;;
    pythia-12b) echo "36|2048|50688|--dim 5120 --heads 40 --ffn 20480 --ctx 2048 --norm layer --norm-bias --norm-eps 1e-5 --rotary-frac 0.25 --parallel --mlp gelu --act gelu --mlp-bias --qkv-bias --out-bias" ;;
    mpt-7b) echo "32|2048|50432|--dim 4096 --heads 32 --ffn 16384 --ctx 2048 --norm layer --norm-eps 1e-5 --pos alibi --alibi-bias-max 8 --mlp gelu --act gelu --tie" ;;
    tiny) echo "2|64|256|--dim 64 --heads 4 --ffn 128 --ctx 64" ;; # the scripts' own check
    *) echo "table2: unknown model '$1' (llama2-7b, falcon-7b, pythia-12b, mpt-7b)" >&2; return 2 ;;
    esac
}
