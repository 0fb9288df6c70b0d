#!/usr/bin/env bash
# make bench-gpu: the cuda backend at the Llama-2-7B shape (random bf16 weights) on the GPU
# of this machine, with the transformers reference scheme and the GPU's two ceilings measured
# in the same run. Writes docs/bench/gpu/bench_gpu.json and docs/bench/gpu/BENCH_GPU.md (with
# GPU name, driver and git revision), and keeps every raw output in $BENCH_RAW.
#
#   bench/gpu/run_bench.sh [sections...]   sections: ceilings exact sweep flat reference
#                                         (default: these; `decode` adds 300-token runs at 4+2044
#                                         and 4+4092, which the sweep already covers, and the same
#                                         with programmatic dependent launch off and with the other
#                                         decode-attention split shapes, for comparison)
# Knobs: SINKBENCH (bin/sinkbench), GEMM_BW (build-cuda/bench/gemm_bw), BENCH_RAW ($OUT or
# /tmp/bench_gpu), EXACT_TOKENS (262144), TABLE2_TOKENS (400000), FLAT_TOKENS (12000),
# SWEEP_CACHES (256 512 1024 2048 4096), SWEEP_NO_RECOMPUTE (set: streaming only), EXACT_CHUNKS
# (4096 8192: exact mode again with these --chunk values, beside the default 2048), REF_CACHES
# (256,512,1024,2048,4096: the reference's caches).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
sb=${SINKBENCH:-bin/sinkbench}
gemm=${GEMM_BW:-build-cuda/bench/gemm_bw}
raw=${BENCH_RAW:-${OUT:-/tmp/bench_gpu}}
exact_n=${EXACT_TOKENS:-262144}
table2_n=${TABLE2_TOKENS:-400000}
flat_n=${FLAT_TOKENS:-12000}
sections=${*:-ceilings exact sweep flat reference}
mkdir -p "$raw"
say() { printf '[bench-gpu %s] %s\n' "$(date +%T)" "$*" >&2; }
has() { case " $sections " in *" $1 "*) return 0 ;; esac; return 1; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$raw/gpu.txt" 2>/dev/null || true
say "gpu: $(cat "$raw/gpu.txt" 2>/dev/null)"
model=${MODEL_7B:-/tmp/sb_llama7b}
need_model() {
    [ -f "$model/config.json" ] && return 0
    say "random Llama-2-7B shape, bf16 -> $model"
    local t0=$SECONDS
    $sb init --arch llama --vocab 32000 --dim 4096 --layers 32 --heads 32 --ffn 11008 --ctx 4096 --dtype bf16 \
        --seed 1 --out "$model" >/dev/null
    say "init took $((SECONDS - t0)) s"
}
ids=$raw/random.ids
[ -f "$ids" ] || awk -v n=$((table2_n + 2)) 'BEGIN { srand(11); for (i = 0; i < n; i++) print int(rand() * 32000) }' >"$ids"
common=(--device cuda --max-memory 110G --json)

if has ceilings; then
    say "ceilings: copy bandwidth, cuBLAS GEMM at the model's shapes"
    "$gemm" --dim 4096 --kv-dim 4096 --ffn 11008 --vocab 32000 --layers 32 --rows 2048 >"$raw/ceilings.json"
    "$gemm" --dim 4096 --kv-dim 4096 --ffn 11008 --vocab 32000 --layers 32 --rows 1 --reps 50 >"$raw/ceilings_m1.json"
fi
if has exact; then
    need_model
    say "exact mode, sinks:4:2044, $exact_n tokens"
    $sb ppl --model "$model" --data "$ids" --tokens $((exact_n + 1)) --policy sinks:4:2044 "${common[@]}" \
        >"$raw/exact_4_2044.json"
    for ch in ${EXACT_CHUNKS-4096 8192}; do
        say "exact mode, sinks:4:2044, --chunk $ch"
        $sb ppl --model "$model" --data "$ids" --tokens $((exact_n + 1)) --policy sinks:4:2044 --chunk "$ch" \
            "${common[@]}" >"$raw/exact_4_2044_c$ch.json" || say "--chunk $ch failed"
    done
    say "exact mode, one Table 2 cell: sinks:4:4092, $table2_n tokens"
    $sb ppl --model "$model" --data "$ids" --tokens $((table2_n + 1)) --policy sinks:4:4092 "${common[@]}" \
        >"$raw/table2_cell.json"
fi
if has decode; then
    need_model
    for c in 2048 4096; do
        say "decode latency, sinks:4:$((c - 4))"
        $sb latency --model "$model" --policy sinks:4:$((c - 4)) --tokens 300 "${common[@]}" >"$raw/decode_$c.json"
        say "decode latency, sinks:4:$((c - 4)), programmatic dependent launch off"
        SINKBENCH_CUDA_LEGACY=pdl $sb latency --model "$model" --policy sinks:4:$((c - 4)) --tokens 300 \
            "${common[@]}" >"$raw/decode_nopdl_$c.json"
        for v in 128 128u8; do
            say "decode latency, sinks:4:$((c - 4)), decode attention split shape $v"
            SINKBENCH_CUDA_DECODE=$v $sb latency --model "$model" --policy sinks:4:$((c - 4)) --tokens 300 \
                "${common[@]}" >"$raw/decode_split${v}_$c.json"
        done
    done
fi
if has sweep; then
    need_model
    for c in ${SWEEP_CACHES:-256 512 1024 2048 4096}; do
        say "cache $c: StreamingLLM and re-computation"
        $sb latency --model "$model" --policy sinks:4:$((c - 4)) --tokens 100 "${common[@]}" >"$raw/sweep_stream_$c.json"
        [ -n "${SWEEP_NO_RECOMPUTE:-}" ] ||
            $sb latency --model "$model" --policy recompute:$c --tokens 8 "${common[@]}" >"$raw/sweep_recompute_$c.json"
    done
fi
if has flat; then
    need_model
    say "decode flatness: sinks:4:2044 over $flat_n tokens"
    $sb latency --model "$model" --policy sinks:4:2044 --warmup 0 --tokens "$flat_n" --sample-every 500 \
        --out "$raw/flat.h5" "${common[@]}" >"$raw/flat.json"
fi
if has reference; then
    say "transformers reference (eager fp16, one token per forward, cache trimmed to 4+W)"
    PYTHONUNBUFFERED=1 python3 bench/gpu/reference_transformers.py --caches "${REF_CACHES:-256,512,1024,2048,4096}" \
        >"$raw/reference.jsonl"
fi
say "summary"
python3 bench/gpu/summarize.py "$raw" docs/bench/gpu
