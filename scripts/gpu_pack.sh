#!/usr/bin/env bash
# Builds the CUDA binaries here (nvcc, no GPU needed) and packs what a GPU machine needs into
# .gpu/ (ignored), for scripts/device_gpu.sh there: bin/sinkbench, the GPU test binaries,
# gemm_bw, the BPE-4096 tokenizer and a held-out stream of sb-base tokens; then
# .gpupack/gpu.txz holds .gpu/ (and models/sb-base unless PACK_MODELS=0), compressed (the CUDA
# fat binaries shrink 6x), because a lent machine takes at most 64 MiB of working tree.
#   scripts/gpu_pack.sh          binaries + models/sb-base (tests, benchmarks)
#   scripts/gpu_pack.sh train    binaries + the training and held-out texts, xz-compressed into
#                                .gpudata/ (tokenized there, in seconds), for device_gpu.sh train
# Runtime .debs come from scripts/fetch_runtime_debs.sh (.debs/). Carry .gpupack, .debs (and
# .gpudata for training). The build has no MPI (the lent machine has no Open MPI).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-}
make -s CUDA=1 MPI=0 BUILD=build-cuda -j"$(nproc)" build-cuda/sinkbench gpu-tests build-cuda/bench/gemm_bw
rm -rf .gpu && mkdir -p .gpu/bin .gpu/gpu
cp build-cuda/sinkbench .gpu/bin/sinkbench
cp build-cuda/gpu/test_* .gpu/gpu/ && rm -f .gpu/gpu/*.d
cp build-cuda/bench/gemm_bw .gpu/bin/
cp models/sb-base/tokenizer.json .gpu/tokenizer.json
[ -d .debs ] || scripts/fetch_runtime_debs.sh
if [ -f data/text/heldout-book.txt ]; then
    head -c 200000 data/text/heldout-book.txt >.gpu/heldout.txt
    bin/sinkbench tokenize --model models/sb-base --in .gpu/heldout.txt --out .gpu/heldout.tok >/dev/null
    rm .gpu/heldout.txt
fi
strip .gpu/bin/* .gpu/gpu/*
rev=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . ':!models' ':!results' || rev="$rev-dirty"
echo "$rev" >.gpu/git_rev
mkdir -p .gpupack
if [ "$what" = train ]; then
    mkdir -p .gpudata
    # train-more.txt (15 MB compressed) only when a default model's config trains on it: the
    # call's 64 MiB would not hold it beside the binaries, .debs and the other texts
    more=()
    grep -qs '^train *= *data/tok/train.tok' configs/train_{base,sinktok,zerosink}.ini && more=(data/text/train-more.txt)
    rm -f .gpudata/train-more.txt.xz
    for f in data/text/train.txt "${more[@]}" data/text/heldout-book.txt data/text/heldout-austen.txt; do
        b=$(basename "$f" .txt)
        [ .gpudata/$b.txt.xz -nt "$f" ] || xz -T"$(nproc)" -6 -c "$f" >.gpudata/$b.txt.xz
    done
    tar -cf - .gpu | xz -T"$(nproc)" -6 >.gpupack/gpu.txz
    du -sh .gpupack .gpudata .debs
else
    # the 29.3M sb-base (58.6 MB bf16, hardly compressible) plus .debs exceed a call's 64 MiB
    # carry: PACK_MODELS=0 leaves it out (test_backend then reports its sb-base check failed);
    # or send this pack without .debs in a second call on a machine still warm from a call
    # that carried them (device_gpu.sh keeps their unpacked libraries)
    models=(models/sb-base)
    [ "${PACK_MODELS:-1}" = 0 ] && models=()
    tar -cf - .gpu "${models[@]}" | xz -T"$(nproc)" -6 >.gpupack/gpu.txz
    du -sh .gpupack .debs
fi
