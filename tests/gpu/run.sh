#!/usr/bin/env bash
# GPU test sections (need a CUDA device; build first with `make CUDA=1 gpu-tests`).
#   tests/gpu/run.sh kernels          every CUDA kernel against its CPU reference (PASS/FAIL table)
#   tests/gpu/run.sh kernels --bench  timing of the attention kernels, JSON lines
#   tests/gpu/run.sh resources        registers/shared memory/spills per kernel (nvcc only, no GPU)
# BUILD selects the build directory (default build, as make). Exit status: that of the tests.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
build=${BUILD:-build}
section=${1:-}
[ $# -gt 0 ] && shift
case "$section" in
kernels)
    bin="$build/gpu/test_kernels"
    if [ ! -x "$bin" ]; then
        echo "tests/gpu/run.sh: $bin is missing; build it with: make CUDA=1 BUILD=$build gpu-tests" >&2
        exit 2
    fi
    exec "$bin" "$@"
    ;;
resources)
    exec bash tests/gpu/resources.sh
    ;;
*)
    echo "usage: tests/gpu/run.sh kernels [--bench] [--filter SUBSTRING] | resources" >&2
    exit 2
    ;;
esac
