#!/usr/bin/env bash
# `make models`: reproduce the default models from scratch on this machine's CPU cores:
# datasets (make datasets), the BPE-4096 tokenizer, token files, then for each of sb-base,
# sb-sinktok and sb-zerosink: train (configs/train_<name>.ini), convert to bf16, evaluate
# both held-out streams under sinks:4:508 and write CARD.md.
#   scripts/make_models.sh [OUT]        OUT defaults to models (the shipped models are replaced)
# Environment: THREADS (training and evaluation threads, default: all cores), MODELS (default
# "base sinktok zerosink"). Interrupted training resumes where it stopped (train --resume).
# Time: the shipped models took 16 min each with 5 threads on a 16-core Xeon (three at once);
# on 2 cores expect about 45 min of training per model plus 25 min of evaluation.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-models}
threads=${THREADS:-$(nproc)}
models=${MODELS:-base sinktok zerosink}
bin=bin/sinkbench
say() { echo "make_models: $*" >&2; }
[ -x "$bin" ] || make -j"$(nproc)" all
make datasets
if [ ! -f data/tokenizer-4096/tokenizer.json ]; then
    say "tokenizer"
    "$bin" tokenizer-train --in data/text/train.txt --vocab 4096 --out data/tokenizer-4096
fi
mkdir -p data/tok
for s in train heldout-book heldout-austen; do
    # a token file older than its tokenizer or its text is stale
    if [ ! -f data/tok/$s.tok ] || [ data/tokenizer-4096/tokenizer.json -nt data/tok/$s.tok ] ||
        [ data/text/$s.txt -nt data/tok/$s.tok ] || { [ $s = train ] && [ data/text/train-more.txt -nt data/tok/train.tok ]; }; then
        say "tokenize $s"
        if [ $s = train ]; then
            # the training stream is train.txt (the tokenizer's text) followed by train-more.txt
            "$bin" tokenize --model data/tokenizer-4096 --in <(cat data/text/train.txt data/text/train-more.txt) \
                --out data/tok/train.tok
        else
            "$bin" tokenize --model data/tokenizer-4096 --in data/text/$s.txt --out data/tok/$s.tok
        fi
    fi
done
mkdir -p "$out" build/models
for m in $models; do
    work=build/models/sb-$m
    resume=()
    [ -f "$work/train_state.bin" ] && resume=(--resume)
    say "train sb-$m ($threads threads)"
    "$bin" train --config configs/train_$m.ini --out "$work" --threads "$threads" "${resume[@]}" 2> >(tee "$work.log" >&2)
    say "convert sb-$m to bf16"
    rm -rf "$out/sb-$m"
    "$bin" convert --model "$work" --dtype bf16 --out "$out/sb-$m"
    cp "$work/train_log.h5" "$work/train.ini" "$out/sb-$m/"
    cp "$work.log" "$out/sb-$m/train_$m.log"
    cp configs/train_$m.ini "$out/sb-$m/train_$m.ini"
    mkdir -p "$out/eval"
    evals=()
    for s in austen book; do
        say "evaluate sb-$m on heldout-$s"
        "$bin" ppl --model "$out/sb-$m" --data data/text/heldout-$s.txt --policy sinks:4:508 --threads "$threads" --json \
            >"$out/eval/sb-$m.$s.json"
        evals+=(--eval "$out/eval/sb-$m.$s.json")
    done
    "$bin" card --model "$out/sb-$m" "${evals[@]}" --train-output "$out/sb-$m/train_$m.log"
done
say "done: $out"
