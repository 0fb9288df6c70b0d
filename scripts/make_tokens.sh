#!/usr/bin/env bash
# The token streams of the default models, at the BPE-4096 of data/tokenizer-4096, in data/tok/:
#   scripts/make_tokens.sh BIN STREAM...
# STREAM: train-only (train.txt alone, what the default models train on), train (train.txt
# followed by train-more.txt), train-half (the first documents of train.txt up to half its bytes:
# an ablation, twice the epochs at the same steps), heldout-book, heldout-austen. A token file older than its
# tokenizer or one of its texts is made again. Used by scripts/make_models.sh and, on a lent GPU
# machine, scripts/device_gpu.sh, so both train on the same streams.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:?usage: make_tokens.sh BIN STREAM...}
shift
mkdir -p data/tok
half_text() { # the documents of train.txt (shuffled at build) up to half its bytes
    local t=data/text/train-half.txt
    [ -f "$t" ] && [ ! data/text/train.txt -nt "$t" ] && return
    LC_ALL=C awk -v half=$(($(stat -c %s data/text/train.txt) / 2)) '
        { print; n += length($0) + 1 } /^<\|endoftext\|>$/ && n >= half { exit }' data/text/train.txt >"$t.tmp"
    mv "$t.tmp" "$t"
}
for s in "$@"; do
    case "$s" in
        train-only) texts=(data/text/train.txt) ;;
        train) texts=(data/text/train.txt data/text/train-more.txt) ;;
        train-half) half_text; texts=(data/text/train-half.txt) ;;
        heldout-book | heldout-austen) texts=("data/text/$s.txt") ;;
        *) echo "make_tokens.sh: unknown stream '$s' (train-only, train, train-half, heldout-book, heldout-austen)" >&2; exit 2 ;;
    esac
    out=data/tok/$s.tok
    stale=0
    [ -f "$out" ] && [ ! data/tokenizer-4096/tokenizer.json -nt "$out" ] || stale=1
    for t in "${texts[@]}"; do [ "$t" -nt "$out" ] && stale=1; done
    [ "$stale" = 1 ] || continue
    echo "make_tokens: tokenize $s" >&2
    # one text is read by name (tokenize then records the byte count and the text's manifest)
    if [ ${#texts[@]} = 1 ]; then
        "$bin" tokenize --model data/tokenizer-4096 --in "${texts[0]}" --out "$out"
    else
        "$bin" tokenize --model data/tokenizer-4096 --in <(cat "${texts[@]}") --out "$out"
    fi
done
