#!/usr/bin/env bash
# Memory estimate before allocating: ppl, latency, attention and train refuse a run whose estimate
# (weights + KV cache + activations + logits) exceeds --max-memory or what ulimit -v leaves,
# with the estimate and its parts in one stderr line; a generous --max-memory lets the run go.
set -u
cd "$(dirname "$0")/.."
SB=${SINKBENCH:-bin/sinkbench}
[ -x "$SB" ] || { echo "SKIP $SB not built"; exit 0; }
T=$(mktemp -d /tmp/sb_test_memest.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_WAIT_POLICY=passive
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

$SB init --arch llama --vocab 256 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --ctx 64 --seed 3 \
    --out "$T/m" >/dev/null || { echo "FAIL: init"; exit 1; }
# a large model (tens of GiB of weights) that is never loaded: the config is enough to refuse it
mkdir -p "$T/big"
cp "$T/m/config.json" "$T/big/config.json"
for kv in hidden_size=8192 intermediate_size=22016 num_hidden_layers=16 vocab_size=32000 \
    num_attention_heads=64 num_key_value_heads=8 head_dim=128; do
    sed -i "s/\"${kv%=*}\":[[:space:]]*[0-9]*/\"${kv%=*}\": ${kv#*=}/" "$T/big/config.json"
done
awk 'BEGIN { srand(3); for (i = 0; i < 2000; i++) printf "%d%s", int(rand() * 256), (i % 20 == 19) ? "\n" : " " }' \
    >"$T/d.ids"

expect_refusal() { # what limit-word args...
    local what=$1 word=$2; shift 2
    "$SB" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    [ $rc -eq 1 ] || { fail "$what: status $rc, want 1: $(cat "$T/err")"; return; }
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$what: not one stderr line: $(cat "$T/err")"
    grep -Eq "needs [0-9]+ bytes \(estimate [0-9.]+ [KMG]i?B: weights " "$T/err" || fail "$what: no estimate: $(cat "$T/err")"
    grep -q -- "$word" "$T/err" || fail "$what: stderr lacks '$word': $(cat "$T/err")"
    [ -s "$T/out" ] && fail "$what: printed a result"
}

# --- --max-memory too small: refused, naming the limit
expect_refusal "ppl --max-memory 64K" "more than the --max-memory limit of 65536 bytes" \
    ppl --model "$T/m" --data "$T/d.ids" --policy dense --max-memory 64K
expect_refusal "latency --max-memory 64K" "--max-memory" \
    latency --model "$T/m" --policy sinks:4:28 --tokens 100 --max-memory 64K
expect_refusal "attention --max-memory 64K" "--max-memory" \
    attention --model "$T/m" --data "$T/d.ids" --max-memory 64K
grep -q "KV cache" "$T/err" || grep -q "dense cache" "$T/err" || fail "attention: the estimate does not list the cache"
# --- the same runs fit a generous limit
$SB ppl --model "$T/m" --data "$T/d.ids" --policy dense --max-memory 8G --json >"$T/out" 2>"$T/err" \
    || fail "ppl --max-memory 8G refused: $(cat "$T/err")"
est=$(sed -n 's/.*"memory_estimate_bytes":\([0-9]*\).*/\1/p' "$T/out")
[ -n "$est" ] && [ "$est" -gt 65536 ] || fail "ppl: memory_estimate_bytes $est not above the refused limit"
$SB latency --model "$T/m" --policy sinks:4:28 --tokens 100 --max-memory 8G >/dev/null 2>"$T/err" \
    || fail "latency --max-memory 8G refused: $(cat "$T/err")"
# --- the default limit (available memory) refuses the 4 GiB model before touching any weight
expect_refusal "ppl on a model larger than --max-memory 1G" "more than the --max-memory limit" \
    ppl --model "$T/big" --data "$T/d.ids" --policy window:16 --max-memory 1G
# --- train: the estimate (weights, gradients, AdamW moments, activations, checkpoint image,
# tokens, runtime) is made before the model is allocated and bounds the real peak RSS closely
awk 'BEGIN { x = 7; for (i = 0; i < 6000; i++) { x = (x * 1103515245 + 12345) % 2147483648;
     printf "%d%s", x % 8000, (i % 20 == 19) ? "\n" : " " } }' >"$T/train.ids"
# logits [2048, 8192] and probs [2, 8, 4, 256, 256] dominate: ~150 MiB in about a second
cat >"$T/train.ini" <<INI
[model]
vocab = 8192
dim = 64
layers = 2
heads = 4
kv_heads = 2
ffn = 128
ctx = 256
[data]
train = $T/train.ids
seq_len = 256
[optim]
steps = 1
warmup = 0
batch = 8
[run]
threads = 2
INI
expect_refusal "train --max-memory 1M" "more than the --max-memory limit of 1048576 bytes" \
    train --config "$T/train.ini" --out "$T/tr_refused" --max-memory 1M
for part in "gradients " "AdamW moments " "activations " "checkpoint " "tokens " "runtime "; do
    grep -q "+ $part" "$T/err" || fail "train refusal: the estimate lacks '$part': $(cat "$T/err")"
done
[ -e "$T/tr_refused/train_state.bin" ] && fail "train refusal: a training state was written"
# the default limit (available memory) refuses a batch whose attention maps alone need ~32 TiB
sed 's/^batch = 8/batch = 65536/; s/^seq_len = 256/seq_len = 4096/; s/^ctx = 256/ctx = 4096/' \
    "$T/train.ini" >"$T/train_huge.ini"
expect_refusal "train beyond available memory" "--max-memory SIZE overrides" \
    train --config "$T/train_huge.ini" --out "$T/tr_huge"
grep -Eq "activations [0-9]{5,}\.[0-9]+ GiB" "$T/err" || fail "train huge: activations not ~43000 GiB: $(cat "$T/err")"
"$SB" train --config "$T/train.ini" --out "$T/tr" --max-memory 1G >"$T/out" 2>"$T/err" \
    || fail "train --max-memory 1G refused or failed: $(cat "$T/err")"
est=$(sed -n 's/.*memory estimate [^(]*(\([0-9]*\) bytes).*/\1/p' "$T/err")
peak=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' "$T/err")
if [ -z "$est" ] || [ -z "$peak" ]; then
    fail "train: no estimate or peak RSS in the summary: $(cat "$T/err")"
elif [ -n "${SB_UNDER_SANITIZER:-}" ]; then
    echo "SKIP train estimate vs peak RSS under $SB_UNDER_SANITIZER (shadow memory)"
else
    # the estimate must cover the peak (VmHWM) and exceed it by no more than 6 %
    awk -v e="$est" -v p="$peak" 'BEGIN { p *= 1048576; exit !(e >= p && e <= p * 1.06) }' \
        || fail "train: estimate $est bytes vs peak RSS $peak MiB: not within [peak, peak + 6 %]"
    echo "train: estimate $est bytes, peak RSS $peak MiB"
fi
# --- ulimit -v: the address space left is the limit (the binary itself needs ~100 MiB mapped);
# a sanitizer build reserves terabytes of shadow memory and cannot start under any ulimit -v
if [ -n "${SB_UNDER_SANITIZER:-}" ]; then
    echo "SKIP ulimit -v checks under $SB_UNDER_SANITIZER"
    [ "$fails" -eq 0 ] && echo ok
    exit $((fails > 0))
fi
(ulimit -v 400000; "$SB" ppl --model "$T/big" --data "$T/d.ids" --policy window:16 >"$T/out" 2>"$T/err"; echo $? >"$T/rc")
[ "$(cat "$T/rc")" -eq 1 ] || fail "ulimit -v: status $(cat "$T/rc"): $(cat "$T/err")"
grep -q "ulimit -v" "$T/err" || fail "ulimit -v: the message does not name the limit: $(cat "$T/err")"
grep -q -- "--max-memory SIZE overrides" "$T/err" || fail "ulimit -v: no hint at --max-memory"
# --- under ulimit -v a small run still fits
(ulimit -v 1500000; "$SB" ppl --model "$T/m" --data "$T/d.ids" --policy window:16 >/dev/null 2>"$T/err"; echo $? >"$T/rc")
[ "$(cat "$T/rc")" -eq 0 ] || fail "a small run under ulimit -v 1.5G: status $(cat "$T/rc"): $(cat "$T/err")"

[ "$fails" -eq 0 ] && echo ok
[ "$fails" -eq 0 ]
