#!/usr/bin/env bash
# On the GPU machine (the device tool), with .gpupack/ and .debs/ carried (scripts/gpu_pack.sh):
#   scripts/device_gpu.sh tests            tests/gpu/run.sh (kernels, backend)
#   scripts/device_gpu.sh bench [SECTIONS]  bench/gpu/run_bench.sh; raw outputs packed into
#                                          $OUT/bench_raw.tgz
#   scripts/device_gpu.sh train NAME [SECS] [STOP]  (pack: scripts/gpu_pack.sh train; carry .gpudata)
#                                          train configs/train_NAME.ini on the GPU for at most SECS
#                                          seconds (default 500; SIGTERM checkpoints, a later call
#                                          on the same machine resumes), or up to step STOP; once
#                                          finished: bf16 shards of <= 16 MiB in $OUT/sb-NAME/ and
#                                          the GPU evaluations (scripts/model_evals.sh) in
#                                          $OUT/sb-NAME.tgz with the logs
#   scripts/device_gpu.sh curve NAME STEP... as train, stopping at each STEP to measure the
#                                          collapse on the quick study's 64K book tokens
#                                          (window vs the model's cache policy), one JSON
#                                          line per step in $OUT/curve_NAME.jsonl; then train
# Binaries are the ones scripts/gpu_pack.sh built (the runtime .debs unpacked into a private
# prefix, scripts/device_env.sh). Every log goes to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:?usage: device_gpu.sh tests|bench [sections]}
shift
# a pack differing from the one unpacked last (a warm machine keeps .gpu) is unpacked again
sum=$(sha256sum .gpupack/gpu.txz 2>/dev/null | cut -c1-64)
if [ ! -d .gpu ] || [ "$sum" != "$(cat .gpu/.pack_sha256 2>/dev/null)" ]; then
    rm -rf .gpu && tar -xJf .gpupack/gpu.txz && echo "$sum" >.gpu/.pack_sha256
fi
# the runtime libraries: unpacked from .debs once per machine (scripts/device_env.sh), so a
# later call on the same warm machine may leave .debs behind (room for models/sb-base)
[ -d .debs ] || [ -d "${SB_PREFIX:-/tmp/sbprefix}/usr" ] ||
    { echo "device_gpu.sh: no .debs carried and none unpacked on this machine yet" >&2; exit 2; }
source scripts/device_env.sh
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH}:/usr/local/cuda/lib64"
export SINKBENCH_GIT_REV=$(cat .gpu/git_rev 2>/dev/null || echo unknown)
out=${OUT:-/tmp/out}
mkdir -p "$out"
case "$what" in
tests)
    GPU_BIN=.gpu/gpu tests/gpu/run.sh "$@" 2>&1 | tee "$out/gpu_tests.log"
    ;;
bench)
    raw=/tmp/bench_raw
    SINKBENCH=.gpu/bin/sinkbench GEMM_BW=.gpu/bin/gemm_bw BENCH_RAW=$raw bench/gpu/run_bench.sh "$@" 2>&1 |
        tee "$out/bench.log"
    tar -C /tmp --exclude=random.ids -czf "$out/bench_raw.tgz" bench_raw
    ;;
curve)
    name=${1:?usage: device_gpu.sh curve NAME STEP...}
    shift
    t0=$SECONDS
    work=build/models/sb-$name
    if grep -q '^type *= *sink_token' configs/train_$name.ini; then pols=(window:511 learned:511 learned:4:508)
    else pols=(window:512 sinks:4:508); fi
    for s in "$@" 0; do
        "$0" train "$name" $((560 - (SECONDS - t0))) "$s" || exit 1
        [ "$s" -gt 0 ] || break
        # cut by the time limit before STEP: the checkpoint stays, a later call resumes
        if ! tail -n 3 "$out/train_$name.log" | grep -q "^sinkbench train: $s steps"; then
            echo "device_gpu.sh: curve $name stopped before step $s (time); call again to go on"
            break
        fi
        line="{\"step\": $s"
        for p in "${pols[@]}"; do
            v=$(.gpu/bin/sinkbench ppl --model "$work" --data data/tok/heldout-book.tok --tokens 65536 --policy "$p" \
                --device cuda --json | sed -n 's/.*"ppl": *\([0-9.eE+-]*\).*/\1/p')
            line="$line, \"$p\": ${v:-null}"
        done
        echo "$line}" | tee -a "$out/curve_$name.jsonl"
    done
    echo "device_gpu.sh: curve $name: $((SECONDS - t0)) s"
    ;;
train)
    name=${1:?usage: device_gpu.sh train NAME [SECS] [STOP]}
    secs=${2:-500}
    stop=${3:-0}
    bin=.gpu/bin/sinkbench
    t0=$SECONDS
    mkdir -p data/text data/tok data/tokenizer-4096 build/models
    cp -p .gpu/tokenizer.json data/tokenizer-4096/tokenizer.json
    for f in .gpudata/*.txt.xz; do
        t=data/text/$(basename "$f" .xz)
        [ -f "$t" ] || xz -T0 -dc "$f" >"$t"
    done
    # the training stream the config names (data/tok/NAME.tok) and the held-out ones
    stream=$(sed -n 's|^train *= *data/tok/\(.*\)\.tok *$|\1|p' configs/train_$name.ini)
    scripts/make_tokens.sh $bin "$stream" heldout-book heldout-austen || exit 1
    echo "device_gpu.sh: data ready in $((SECONDS - t0)) s" | tee -a "$out/train_$name.log"
    work=build/models/sb-$name
    resume=()
    [ -f "$work/train_state.bin" ] && resume=(--resume)
    stop_arg=()
    [ "$stop" -gt 0 ] && stop_arg=(--stop-at "$stop")
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /' |
        tee -a "$out/train_$name.log"
    timeout -s TERM "$secs" $bin train --config configs/train_$name.ini --out "$work" --device cuda \
        "${resume[@]}" "${stop_arg[@]}" 2>&1 | tee -a "$out/train_$name.log"
    want=$(sed -n 's/^steps *= *\([0-9]*\).*/\1/p' configs/train_$name.ini)
    if grep -q "^sinkbench train: $want steps" "$out/train_$name.log" && [ "$stop" -eq 0 ]; then
        rm -rf "$out/sb-$name"
        $bin convert --model "$work" --dtype bf16 --max-shard 16M --out "$out/sb-$name"
        cp "$work/train_log.h5" "$work/train.ini" "$out/sb-$name/"
        cp configs/train_$name.ini "$out/sb-$name/train_$name.ini"
        cp "$out/train_$name.log" "$out/sb-$name/train_$name.log"
        BIN=$bin DEVICE=cuda scripts/model_evals.sh "$out/sb-$name" "$out/sb-$name/eval" 2>&1 | tee -a "$out/train_$name.log"
        # at most 8 files come back: the shards alone, everything small in one archive
        tar -C "$out" -czf "$out/sb-$name.tgz" --exclude='model-*.safetensors' "sb-$name"
        find "$out/sb-$name" -type f ! -name 'model-*.safetensors' -delete
        rm -rf "$out/sb-$name/eval"
    fi
    echo "device_gpu.sh: train $name: $((SECONDS - t0)) s" | tee -a "$out/train_$name.log"
    ;;
*) echo "device_gpu.sh: unknown '$what'" >&2; exit 2 ;;
esac
