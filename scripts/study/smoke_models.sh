#!/usr/bin/env bash
# Makes the three tiny smoke-test models of `./run_all.sh --smoke` in DIR/models:
# smoke-base (vanilla), smoke-sinktok (learned <sink> token) and smoke-zerosink (softmax
# off-by-one), mirroring the three default models at a size that trains in seconds:
# a 512-token BPE tokenizer and 1 MB of the training text, 2 layers, context 64, 60 steps.
# If `sinkbench train` fails, random models from `sinkbench init` stand in (with a warning).
# Prints one line on stdout: how the models were made (for the report).
#   usage: scripts/study/smoke_models.sh DIR
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${1:?usage: smoke_models.sh DIR}
sb=$repo/bin/sinkbench
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
steps=60
stamp=$( { cat "${BASH_SOURCE[0]}"; echo "${SB_SMOKE_NO_TRAIN:-}"; sha256sum "$sb" "$repo/data/text/train.txt" 2>/dev/null; } | sha256sum | cut -d' ' -f1)
if [ -f "$dir/.stamp" ] && [ "$(head -n1 "$dir/.stamp")" = "$stamp" ]; then
    tail -n1 "$dir/.stamp"
    exit 0
fi
log() { echo "smoke models: $*" >&2; }
rm -rf "$dir/models" "$dir/.stamp"
mkdir -p "$dir/models"
head -c 1000000 "$repo/data/text/train.txt" > "$dir/train.txt"
head -c 200000 "$repo/data/text/heldout-book.txt" > "$dir/heldout.txt"
"$sb" tokenizer-train --in "$dir/train.txt" --vocab 512 --out "$dir/tok" >&2
"$sb" tokenize --model "$dir/tok" --in "$dir/train.txt" --out "$dir/train.tok" >&2
"$sb" tokenize --model "$dir/tok" --in "$dir/heldout.txt" --out "$dir/heldout.tok" >&2

kind="smoke: trained $steps steps on 1 MB"
for v in base:vanilla sinktok:sink_token zerosink:zero_sink; do
    name=smoke-${v%%:*} variant=${v#*:}
    cat > "$dir/train_$name.ini" <<INI
; written by scripts/study/smoke_models.sh
[model]
vocab = 512
dim = 64
layers = 2
heads = 4
kv_heads = 4
ffn = 192
ctx = 64
[data]
train = $dir/train.tok
heldout = $dir/heldout.tok
tokenizer = $dir/tok
seq_len = 64
[optim]
lr = 3e-3
min_lr = 3e-4
warmup = 10
steps = $steps
batch = 8
[run]
seed = 1
threads = 1
eval_interval = 10
eval_tokens = 4096
checkpoint_interval = $steps
[variant]
type = $variant
INI
    if [ -n "${SB_SMOKE_NO_TRAIN:-}" ] || ! "$sb" train --config "$dir/train_$name.ini" --out "$dir/models/$name" --quiet > "$dir/train_$name.log" 2>&1; then
        log "sinkbench train failed for $name (see $dir/train_$name.log); using a random init instead"
        kind="smoke: random init"
        break
    fi
done
if [ "$kind" = "smoke: random init" ]; then
    rm -rf "$dir/models"/*
    flat=$(tr -d ' \t\n' < "$dir/tok/tokenizer.json")
    sink=$(grep -o '"id":[0-9]*,"content":"<sink>"' <<<"$flat" | grep -o '[0-9][0-9]*' | head -n1 || true)
    nl=$(grep -o '"Ċ":[0-9]*' <<<"$flat" | grep -o '[0-9][0-9]*' | head -n1 || true)
    common=(--vocab 512 --dim 64 --layers 2 --heads 4 --ctx 64 --newline-token "${nl:-10}")
    "$sb" init "${common[@]}" --out "$dir/models/smoke-base" >&2
    "$sb" init "${common[@]}" --sink-token "${sink:-511}" --out "$dir/models/smoke-sinktok" >&2
    "$sb" init "${common[@]}" --softmax off_by_one --out "$dir/models/smoke-zerosink" >&2
    for m in "$dir/models"/*; do cp "$dir/tok/tokenizer.json" "$m/"; done
fi
printf '%s\n%s\n' "$stamp" "$kind" > "$dir/.stamp"
echo "$kind"
