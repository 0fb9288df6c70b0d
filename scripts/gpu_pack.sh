#!/usr/bin/env bash
# Builds the CUDA binaries here (nvcc, no GPU needed) and packs what a GPU machine needs into
# .gpu/ (ignored), for scripts/device_gpu.sh there: bin/sinkbench, the GPU test binaries,
# gemm_bw, and a held-out stream of sb-base tokens; then .gpupack/gpu.txz holds .gpu/ and
# models/sb-base, compressed (the CUDA fat binaries shrink 6x), because a lent machine takes
# at most 64 MiB of working tree. Runtime .debs come from scripts/fetch_runtime_debs.sh
# (.debs/). Carry .gpupack and .debs.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s CUDA=1 BUILD=build-cuda -j"$(nproc)" build-cuda/sinkbench gpu-tests build-cuda/bench/gemm_bw
rm -rf .gpu && mkdir -p .gpu/bin .gpu/gpu
cp build-cuda/sinkbench .gpu/bin/sinkbench
cp build-cuda/gpu/test_kernels build-cuda/gpu/test_backend .gpu/gpu/
cp build-cuda/bench/gemm_bw .gpu/bin/
[ -d .debs ] || scripts/fetch_runtime_debs.sh
if [ -f data/text/heldout-book.txt ]; then
    head -c 200000 data/text/heldout-book.txt >.gpu/heldout.txt
    bin/sinkbench tokenize --model models/sb-base --in .gpu/heldout.txt --out .gpu/heldout.tok >/dev/null
    rm .gpu/heldout.txt
fi
strip .gpu/bin/* .gpu/gpu/*
git rev-parse --short HEAD >.gpu/git_rev
mkdir -p .gpupack
tar -cf - .gpu models/sb-base | xz -T"$(nproc)" -6 >.gpupack/gpu.txz
du -sh .gpupack .debs
