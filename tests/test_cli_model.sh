#!/usr/bin/env bash
# sinkbench init / info: init -> info -> load roundtrip, every feature flag, and every error
# path giving exactly one line on stderr and exit status 1 or 2 (never a signal).
set -u
cd "$(dirname "$0")/.."
SB=${SINKBENCH:-bin/sinkbench}
[ -x "$SB" ] || { echo "SKIP $SB not built"; exit 0; }
T=$(mktemp -d /tmp/sb_test_cli_model.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_error STATUS WORD cmd...: exits STATUS, one stderr line that contains WORD, no stdout noise needed
expect_error() {
    local want=$1 word=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    local lines; lines=$(wc -l <"$T/err")
    if [ "$rc" -ge 128 ]; then fail "$* died by signal ($rc)"; return; fi
    if [ "$rc" -ne "$want" ]; then fail "$*: status $rc, want $want ($(cat "$T/err"))"; return; fi
    if [ "$lines" -ne 1 ]; then fail "$*: $lines stderr lines: $(cat "$T/err")"; return; fi
    grep -qF -- "$word" "$T/err" || fail "$*: stderr lacks '$word': $(cat "$T/err")"
}
json_num() { grep -E "\"$1\":" "$2" | head -1 | sed -E 's/.*:[[:space:]]*//; s/,$//'; }
json_str() { json_num "$@" | tr -d '"'; }

# ---- roundtrip
$SB init --vocab 256 --dim 64 --layers 2 --heads 4 --out "$T/m" >"$T/init.out" || fail "init failed"
grep -q "139584 parameters" "$T/init.out" || fail "init parameter count: $(cat "$T/init.out")"
$SB info --model "$T/m" >"$T/info.txt" || fail "info failed"
grep -q "parameters   139584" "$T/info.txt" || fail "info parameter count"
grep -q "kv cache     1024 bytes/token" "$T/info.txt" || fail "kv bytes per token: $(grep kv "$T/info.txt")"
$SB info --model "$T/m" --json --cache 1000 >"$T/info.json" || fail "info --json failed"
[ "$(json_num n_params "$T/info.json")" = 139584 ] || fail "json n_params"
[ "$(json_num kv_cache_bytes "$T/info.json")" = 1024000 ] || fail "json kv_cache_bytes"
[ "$(json_num weights_ram_bytes "$T/info.json")" = 558336 ] || fail "json weights_ram_bytes"
c1=$($SB info --model "$T/m" --verify | sed -n 's/.*checksum //p')
$SB init --vocab 256 --dim 64 --layers 2 --heads 4 --out "$T/m2" >/dev/null
c2=$($SB info --model "$T/m2" --verify | sed -n 's/.*checksum //p')
$SB init --vocab 256 --dim 64 --layers 2 --heads 4 --seed 2 --out "$T/m3" >/dev/null
c3=$($SB info --model "$T/m3" --verify | sed -n 's/.*checksum //p')
[ -n "$c1" ] && [ "$c1" = "$c2" ] || fail "same seed, different weights ($c1 vs $c2)"
[ "$c1" != "$c3" ] || fail "different seeds, same weights"
cmp -s "$T/m/model.safetensors" "$T/m2/model.safetensors" || fail "same seed, different files"
ls "$T/m" | grep -q tmp && fail "temp file left in $T/m"

# ---- every feature flag reaches config.json and back
$SB init --arch llama --vocab 300 --dim 48 --layers 3 --heads 6 --kv-heads 2 --ffn 100 --ctx 128 --seed 9 \
    --scale 3 --dtype bf16 --norm layer --norm-bias --norm-eps 1e-6 --pos rope --rope-style interleaved \
    --rotary-frac 0.5 --rope-theta 50000 --mlp gelu --act gelu_tanh --parallel --shared-norm --qkv-bias \
    --out-bias --mlp-bias --tie --softmax sink_logit --clip-qkv 6 --sink-token 4 --newline-token 10 \
    --bos 1 --eos 2 --out "$T/f" >/dev/null || fail "init with every feature failed"
$SB info --model "$T/f" --json --verify >"$T/f.json" || fail "info of the feature model failed"
for kv in n_kv_heads=2 ffn_dim=100 max_ctx=128 rotary_dim=4 rope_theta=50000 clip_qkv=6 sink_token_id=4 \
    newline_token_id=10 bos_token_id=1 eos_token_id=2 norm_bias=true parallel_residual=true shared_norm=true \
    qkv_bias=true out_bias=true mlp_bias=true tie_embeddings=true; do
    [ "$(json_num "${kv%%=*}" "$T/f.json")" = "${kv#*=}" ] || fail "feature ${kv%%=*}: $(json_num "${kv%%=*}" "$T/f.json")"
done
for kv in norm=layer rope_style=interleaved mlp=gelu act=gelu_tanh softmax=sink_logit dtype=bf16 attention=GQA; do
    [ "$(json_str "${kv%%=*}" "$T/f.json")" = "${kv#*=}" ] || fail "feature ${kv%%=*}: $(json_str "${kv%%=*}" "$T/f.json")"
done
grep -q '"LlamaForCausalLM"' "$T/f/config.json" || fail "architectures missing"
$SB init --vocab 64 --dim 32 --layers 1 --heads 4 --pos alibi --alibi-bias-max 4 --out "$T/a" >/dev/null &&
    $SB info --model "$T/a" | grep -q "alibi, bias_max 4" || fail "alibi model"
$SB init --vocab 64 --dim 32 --layers 1 --heads 4 --pos none --softmax off_by_one --out "$T/n" >/dev/null &&
    $SB info --model "$T/n" --json | grep -q '"off_by_one"' || fail "off_by_one model"
$SB init --help | grep -q -- "--rotary-frac" || fail "init --help"

# ---- load errors (exit 1)
expect_error 1 "$T/missing" $SB info --model "$T/missing"
cp -r "$T/m" "$T/t"
size=$(stat -c %s "$T/m/model.safetensors")
head -c $((size - 64)) "$T/m/model.safetensors" >"$T/t/model.safetensors"
expect_error 1 "truncated" $SB info --model "$T/t"
head -c 4 "$T/m/model.safetensors" >"$T/t/model.safetensors"
expect_error 1 "truncated" $SB info --model "$T/t"
cp "$T/m/model.safetensors" "$T/t/model.safetensors"
printf '\xff\xff\xff\x7f' | dd of="$T/t/model.safetensors" bs=1 seek=0 conv=notrunc status=none
expect_error 1 "header length" $SB info --model "$T/t"
cp "$T/m/model.safetensors" "$T/t/model.safetensors"
sed -i 's/"intermediate_size":[[:space:]]*192/"intermediate_size": 200/' "$T/t/config.json"
expect_error 1 "expects [200, 64]" $SB info --model "$T/t"
sed -i 's/"hidden_act":[[:space:]]*"silu"/"hidden_act": "relu"/; s/"intermediate_size": 200/"intermediate_size": 192/' "$T/t/config.json"
expect_error 1 "hidden_act 'relu' is not supported" $SB info --model "$T/t"
rm "$T/t/config.json"
expect_error 1 "config.json" $SB info --model "$T/t"
cp "$T/m/config.json" "$T/t/config.json"
rm "$T/t/model.safetensors"
expect_error 1 "model.safetensors" $SB info --model "$T/t"
expect_error 1 "$T/nodir/sub" $SB init --vocab 10 --dim 8 --layers 1 --heads 2 --out "$T/nodir/sub"

# ---- usage errors (exit 2)
base="--vocab 256 --dim 64 --layers 2 --out $T/u"
expect_error 2 "--heads" $SB init $base --heads 0
expect_error 2 "--dim 30" $SB init --vocab 256 --dim 30 --heads 4 --layers 1 --out "$T/u"
expect_error 2 "--kv-heads" $SB init $base --heads 4 --kv-heads 3
expect_error 2 "--vocab" $SB init --vocab abc --dim 64 --layers 2 --heads 4 --out "$T/u"
expect_error 2 "--dtype" $SB init $base --heads 4 --dtype f8
expect_error 2 "--norm" $SB init $base --heads 4 --norm batch
expect_error 2 "--softmax" $SB init $base --heads 4 --softmax sparse
expect_error 2 "--rotary-dim" $SB init $base --heads 4 --rotary-dim 3
expect_error 2 "--rotary-dim" $SB init $base --heads 4 --rotary-dim 32
expect_error 2 "--sink-token" $SB init $base --heads 4 --sink-token 256
expect_error 2 "--shared-norm" $SB init $base --heads 4 --shared-norm
expect_error 2 "--norm-bias" $SB init $base --heads 4 --norm-bias
expect_error 2 "--scale" $SB init $base --heads 4 --scale -1
expect_error 2 "--arch" $SB init $base --heads 4 --arch gpt2
expect_error 2 "--bogus" $SB init $base --heads 4 --bogus
expect_error 2 "--out" $SB init --vocab 256 --dim 64 --layers 2 --heads 4
expect_error 2 "--heads" $SB init $base --heads
expect_error 2 "--model" $SB info
expect_error 2 "--cache" $SB info --model "$T/m" --cache 0
expect_error 2 "--what" $SB info --model "$T/m" --what
[ -e "$T/u" ] && fail "a failed init left $T/u behind"

[ "$fails" -eq 0 ] && echo "all cli model checks passed"
[ "$fails" -eq 0 ]
