#!/usr/bin/env bash
# sinkbench train end to end: usage and config errors (one stderr line, status 1 or 2), a tiny
# sink-token run with a tokenizer, --stop-at + --resume, and the engine reading the result.
set -u
cd "$(dirname "$0")/.."
SB=${SINKBENCH:-bin/sinkbench}
[ -x "$SB" ] || { echo "SKIP $SB not built"; exit 0; }
T=$(mktemp -d /tmp/sb_test_train_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_WAIT_POLICY=passive
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

expect_error() {
    local want=$1 word=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -ge 128 ]; then fail "$* died by signal ($rc)"; return; fi
    if [ "$rc" -ne "$want" ]; then fail "$*: status $rc, want $want ($(cat "$T/err"))"; return; fi
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$*: not one stderr line: $(cat "$T/err")"
    grep -qF -- "$word" "$T/err" || fail "$*: stderr lacks '$word': $(cat "$T/err")"
}

# ---- a small tokenizer with <sink>, and token streams made from its text
for i in $(seq 1 300); do
    echo "the cat sat on the mat number $((i % 17)) and the dog ran to the log $((i % 5))"
done >"$T/text.txt"
$SB tokenizer-train --in "$T/text.txt" --vocab 320 --out "$T/tok" >/dev/null 2>&1 || fail "tokenizer-train"
# training may stop below 320 when no pair repeats: the vocabulary ends with <sink>
SINK=$(sed -n 's/^ *"<sink>": *\([0-9]*\).*/\1/p' "$T/tok/tokenizer.json" | head -1)
[ -n "$SINK" ] || { echo "FAIL: no <sink> in the tokenizer"; exit 1; }
V=$((SINK + 1))
# ids: deterministic pseudo-text over the first 300 ids
awk 'BEGIN { x = 7; for (i = 0; i < 6000; i++) { x = (x * 1103515245 + 12345) % 2147483648;
     if (x % 4) p = (p * 7 + 3) % 300; else p = x % 300; printf "%d%s", p, (i % 20 == 19) ? "\n" : " " } }' >"$T/train.ids"
head -c 3000 "$T/train.ids" | sed '$d' >"$T/held.ids"

cat >"$T/tiny.ini" <<INI
[model]
vocab = $V
dim = 32
layers = 2
heads = 4
kv_heads = 2
ffn = 64
ctx = 64
[data]
train = $T/train.ids
heldout = $T/held.ids
tokenizer = $T/tok
seq_len = 48
[optim]
lr = 3e-3
min_lr = 3e-4
warmup = 4
steps = 12
batch = 2
[run]
threads = 2
eval_interval = 4
eval_tokens = 480
checkpoint_interval = 5
[variant]
type = sink_token
INI

# ---- errors
expect_error 2 "--config is required" $SB train
expect_error 2 "unknown option '--bogus'" $SB train --bogus
expect_error 2 "--out is required" $SB train --config "$T/tiny.ini"
expect_error 2 "--stop-at" $SB train --config "$T/tiny.ini" --out "$T/x" --stop-at zero
expect_error 2 "--max-memory" $SB train --config "$T/tiny.ini" --out "$T/x" --max-memory lots
# --device: a CPU-only binary says so before writing anything; a bad device string is a usage error
if ! grep -q cublasCreate "$SB" 2>/dev/null; then
    expect_error 2 "without CUDA" $SB train --config "$T/tiny.ini" --out "$T/nogpu" --device cuda
    [ ! -e "$T/nogpu" ] || fail "--device cuda on a CPU-only binary created $T/nogpu"
fi
expect_error 2 "--compute f16" $SB train --config "$T/tiny.ini" --out "$T/x" --compute f16
expect_error 2 "--max-memory must be positive" $SB train --config "$T/tiny.ini" --out "$T/x" --max-memory 0
expect_error 1 "more than the --max-memory limit of 4096 bytes" $SB train --config "$T/tiny.ini" --out "$T/x" --max-memory 4K
expect_error 1 "$T/none.ini" $SB train --config "$T/none.ini" --out "$T/x"
sed 's/^lr = 3e-3/lr = fast/' "$T/tiny.ini" >"$T/bad.ini"
expect_error 1 "optim.lr = 'fast'" $SB train --config "$T/bad.ini" --out "$T/x"
sed 's/^batch = 2/batchsize = 2/' "$T/tiny.ini" >"$T/bad.ini"
expect_error 1 "optim.batchsize" $SB train --config "$T/bad.ini" --out "$T/x"
sed "s|^train = .*|train = $T/missing.ids|" "$T/tiny.ini" >"$T/bad.ini"
expect_error 1 "missing.ids" $SB train --config "$T/bad.ini" --out "$T/x"
expect_error 1 "train_state.bin" $SB train --config "$T/tiny.ini" --out "$T/x" --resume
$SB train --help | grep -q -- "--resume" || fail "help lacks --resume"
$SB train --config "$T/tiny.ini" --print-config | grep -q "^sink_token_id = $SINK$" || fail "print-config sink id"

# ---- 12 steps straight vs 6 + resume + 6
$SB train --config "$T/tiny.ini" --out "$T/a" --quiet || fail "straight run: $(cat "$T/err")"
$SB train --config "$T/tiny.ini" --out "$T/b" --quiet --stop-at 6 || fail "first half"
expect_error 1 "--resume" $SB train --config "$T/tiny.ini" --out "$T/b" --quiet
$SB train --config "$T/tiny.ini" --out "$T/b" --quiet --resume || fail "resumed half"
cmp -s "$T/a/model.safetensors" "$T/b/model.safetensors" || fail "resumed weights differ"
for f in config.json model.safetensors tokenizer.json train_state.bin train_log.h5 train.ini; do
    [ -s "$T/a/$f" ] || fail "output lacks $f"
done
grep -q "\"sink_token_id\":[[:space:]]*$SINK" "$T/a/config.json" || fail "config.json lacks the sink id"
h5ls "$T/a/train_log.h5" 2>/dev/null | grep -q "sink_share.*{4, 2, 4}" || fail "sink_share shape: $(h5ls "$T/a/train_log.h5" 2>&1)"

# ---- the engine evaluates what was trained (learned:W prefixes the sink itself)
$SB ppl --model "$T/a" --data "$T/held.ids" --policy learned:32 --tokens 200 --json >"$T/ppl.json" 2>"$T/err" \
    || fail "ppl on the trained model: $(cat "$T/err")"
$SB info --model "$T/a" --verify >/dev/null 2>&1 || fail "info --verify"

# ---- shipping: convert to bf16 (weights within bf16 rounding), then the model card
$SB train --config "$T/tiny.ini" --out "$T/c" 2>"$T/train_c.log" || fail "run for the card"
$SB convert --model "$T/c" --dtype bf16 --out "$T/c16" 2>/dev/null || fail "convert to bf16"
cp "$T/c/train_log.h5" "$T/c/train.ini" "$T/c16/" 2>/dev/null
[ -s "$T/c16/tokenizer.json" ] || fail "convert did not copy tokenizer.json"
[ "$(stat -c %s "$T/c16/model.safetensors")" -lt "$(stat -c %s "$T/c/model.safetensors")" ] || fail "bf16 file not smaller"
$SB ppl --model "$T/c16" --data "$T/held.ids" --policy learned:32 --tokens 200 --json >"$T/p16.json" 2>/dev/null \
    || fail "ppl on the bf16 model"
$SB ppl --model "$T/c" --data "$T/held.ids" --policy learned:32 --tokens 200 --json >"$T/p32.json" 2>/dev/null
awk -v a="$(sed 's/.*"mean_nll":\([0-9.e+-]*\).*/\1/' "$T/p16.json")" \
    -v b="$(sed 's/.*"mean_nll":\([0-9.e+-]*\).*/\1/' "$T/p32.json")" \
    'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 0.01) }' || fail "bf16 NLL far from fp32"
expect_error 2 "--dtype 'f8'" $SB convert --model "$T/c" --dtype f8 --out "$T/x"
# ---- shards: --max-shard splits into Hugging Face shards under the limit, same NLL, and a
# plain convert into the same directory removes them again
$SB convert --model "$T/c" --dtype f32 --out "$T/sh" --max-shard 40K 2>"$T/err" || fail "convert --max-shard: $(cat "$T/err")"
n=$(ls "$T/sh"/model-*-of-*.safetensors 2>/dev/null | wc -l)
[ "$n" -ge 2 ] && [ -f "$T/sh/model.safetensors.index.json" ] && [ ! -e "$T/sh/model.safetensors" ] \
    || fail "want >= 2 shards and an index, no model.safetensors: $(ls "$T/sh")"
for f in "$T/sh"/model-*.safetensors; do [ "$(stat -c %s "$f")" -le 40960 ] || fail "$f exceeds 40K"; done
$SB ppl --model "$T/sh" --data "$T/held.ids" --policy learned:32 --tokens 200 --json >"$T/psh.json" 2>/dev/null \
    || fail "ppl on the sharded model"
[ "$(sed 's/.*"mean_nll":\([0-9.e+-]*\).*/\1/' "$T/psh.json")" = "$(sed 's/.*"mean_nll":\([0-9.e+-]*\).*/\1/' "$T/p32.json")" ] \
    || fail "sharded NLL differs from the single file's"
$SB info --model "$T/sh" --verify >/dev/null 2>&1 || fail "info --verify on shards"
$SB convert --model "$T/c" --dtype f32 --out "$T/sh" 2>/dev/null || fail "convert back to one file"
[ -f "$T/sh/model.safetensors" ] && [ -z "$(ls "$T/sh"/model-* "$T/sh"/*.index.json 2>/dev/null)" ] \
    || fail "stale shards left beside model.safetensors: $(ls "$T/sh")"
expect_error 2 "--max-shard" $SB convert --model "$T/c" --dtype f32 --out "$T/x" --max-shard lots
$SB card --model "$T/c16" --eval "$T/p16.json" --train-output "$T/train_c.log" 2>/dev/null || fail "card"
card="$T/c16/CARD.md"
grep -q "^| tokens seen | 1152 (12 steps x 2 x 1 x 48) |$" "$card" || fail "card: tokens seen: $(grep 'tokens seen' "$card")"
secs=$(sed -n 's/^sinkbench train: .* tok\/s, \([0-9.]*\) s.*/\1/p' "$T/train_c.log" | awk '{ printf "%.1f", $1 }')
[ -n "$secs" ] || fail "the trainer's last line has no time: $(tail -1 "$T/train_c.log")"
grep -q "^| training time | $secs s " "$card" || fail "card: training time not the trainer's $secs s: $(grep 'training' "$card")"
grep -q "^| weights | \`model.safetensors\`, bf16" "$card" || fail "card: weights row"
grep -q "learned:32" "$card" || fail "card: evaluation row"
[ "$(grep -c '^| [0-9] | ' "$card")" -eq 2 ] || fail "card: want one sink-share row per layer"
# a GPU evaluation's row names the GPU and its arithmetic, a CPU one the processor and threads;
# a token stream has no bits per byte (n/a, never nan)
sed -e 's/"device":"cpu"/"device":"cuda:0"/' -e 's/"policy":"learned:32"/"policy":"learned:31"/' \
    -e 's/{/{"device_name":"Test GPU","compute":"bf16",/' "$T/p16.json" >"$T/p16gpu.json"
$SB card --model "$T/c16" --eval "$T/p16.json" --eval "$T/p16gpu.json" --train-output "$T/train_c.log" 2>/dev/null \
    || fail "card with a GPU evaluation"
grep -q '^| .* | `learned:31` | .* | Test GPU (bf16) | ' "$card" || fail "card: GPU row: $(grep 'learned:31' "$card")"
grep -q '^| .* | `learned:32` | .* | .*, [0-9]* | ' "$card" || fail "card: CPU row: $(grep 'learned:32' "$card")"
! grep -q '| nan |' "$card" || fail "card: nan in a row: $(grep nan "$card")"
expect_error 1 "nowhere" $SB card --model "$T/c16/nowhere"
rm "$T/c16/train.ini"; expect_error 1 "train.ini" $SB card --model "$T/c16"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
