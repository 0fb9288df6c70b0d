#!/usr/bin/env bash
# On the GPU machine (the device tool), with .gpupack/ and .debs/ carried (scripts/gpu_pack.sh):
#   scripts/device_gpu.sh tests            tests/gpu/run.sh (kernels, backend)
#   scripts/device_gpu.sh bench [SECTIONS]  bench/gpu/run_bench.sh; raw outputs packed into
#                                          $OUT/bench_raw.tgz
# Binaries are the ones scripts/gpu_pack.sh built (the runtime .debs unpacked into a private
# prefix, scripts/device_env.sh). Every log goes to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:?usage: device_gpu.sh tests|bench [sections]}
shift
[ -d .gpu ] || tar -xJf .gpupack/gpu.txz
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
*) echo "device_gpu.sh: unknown '$what'" >&2; exit 2 ;;
esac
