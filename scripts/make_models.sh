#!/usr/bin/env bash
# `make models`: reproduce the default models from scratch: datasets (make datasets), the
# BPE-4096 tokenizer, token files, then for each of sb-base, sb-sinktok and sb-zerosink: train
# (configs/train_<name>.ini), convert to bf16 shards of at most 16 MiB, evaluate
# (scripts/model_evals.sh) and write CARD.md.
#   scripts/make_models.sh [OUT]        OUT defaults to models (the shipped models are replaced)
# Environment: DEVICE (cpu or cuda[:N]; default cuda when BIN has CUDA and a GPU answers, else
# cpu), BIN (default bin/sinkbench; a CUDA build: make CUDA=1 BUILD=build-cuda, BIN=build-cuda/sinkbench),
# THREADS (default: all cores), MODELS (default "base sinktok zerosink"). Interrupted training
# resumes where it stopped (train --resume).
# Time: the shipped models took 6.6 min of training each on one H200 (938K tokens/s) plus
# about 20 s of GPU evaluation; the CPU trainer would need days for the 360M tokens of the recipe.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-models}
threads=${THREADS:-$(nproc)}
models=${MODELS:-base sinktok zerosink}
bin=${BIN:-bin/sinkbench}
device=${DEVICE:-}
if [ -z "$device" ]; then
    # a CUDA build links cuBLAS (its name is in the binary); a GPU is there when nvidia-smi lists one
    if grep -q cublasCreate "$bin" 2>/dev/null && nvidia-smi -L >/dev/null 2>&1; then device=cuda; else device=cpu; fi
fi
say() { echo "make_models: $*" >&2; }
[ -x "$bin" ] || make -j"$(nproc)" all
make datasets
if [ ! -f data/tokenizer-4096/tokenizer.json ]; then
    say "tokenizer"
    "$bin" tokenizer-train --in data/text/train.txt --vocab 4096 --out data/tokenizer-4096
fi
scripts/make_tokens.sh "$bin" train train-only heldout-book heldout-austen
mkdir -p "$out" build/models
for m in $models; do
    work=build/models/sb-$m
    resume=()
    [ -f "$work/train_state.bin" ] && resume=(--resume)
    say "train sb-$m (device $device, $threads threads)"
    "$bin" train --config configs/train_$m.ini --out "$work" --device "$device" --threads "$threads" "${resume[@]}" \
        2> >(tee -a "$work.log" >&2)
    say "convert sb-$m to bf16 shards"
    rm -rf "$out/sb-$m"
    "$bin" convert --model "$work" --dtype bf16 --max-shard 16M --out "$out/sb-$m"
    cp "$work/train_log.h5" "$work/train.ini" "$out/sb-$m/"
    cp "$work.log" "$out/sb-$m/train_$m.log"
    cp configs/train_$m.ini "$out/sb-$m/train_$m.ini"
    mkdir -p "$out/eval"
    rm -f "$out"/eval/sb-$m.*.json
    BIN=$bin DEVICE=$device THREADS=$threads scripts/model_evals.sh "$out/sb-$m" "$out/eval"
    evals=()
    for f in "$out"/eval/sb-$m.*.json; do evals+=(--eval "$f"); done
    "$bin" card --model "$out/sb-$m" "${evals[@]}" --train-output "$out/sb-$m/train_$m.log"
done
say "done: $out"
