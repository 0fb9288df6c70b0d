#!/usr/bin/env bash
# The GPU tests, on a machine with an NVIDIA GPU (never in CI): every kernel against its CPU
# reference, then the cuda backend against the cpu engine and the transformers goldens
# (tests/gpu/test_backend.c). Build first with `make CUDA=1 BUILD=build-cuda gpu-tests`.
#   tests/gpu/run.sh [kernels] [backend] [train] (default: all three; train = the GPU
#                                               trainer's kernels, tests/gpu/test_train_kernels.c)
#   tests/gpu/run.sh bench-kernels              timings of the attention kernels, JSON lines
#   tests/gpu/run.sh resources                  registers, shared memory and spills per kernel
#                                               (needs nvcc, not a GPU)
# GPU_BIN (default build-cuda/gpu) holds test_kernels, test_backend and test_train_kernels (and
# test_train_gpu, run by the train section when built); HELDOUT_IDS (default .gpu/heldout.tok
# when present) is the stream of the learned and bf16 checks.
# Prints each check, the GPU's name and driver, and a last line "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${GPU_BIN:-build-cuda/gpu}
ids=${HELDOUT_IDS:-.gpu/heldout.tok}
sections=${*:-kernels backend train}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
echo "git: ${SINKBENCH_GIT_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
pass=0 fail=0
run() {
    local name=$1; shift
    local log; log=$(mktemp)
    local t0=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    cat "$log"
    local p f
    p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
    f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | tail -1)
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
    [ "$rc" -eq 0 ] || { [ "${f:-0}" -gt 0 ] || fail=$((fail + 1)); echo "== $name exited $rc"; }
    echo "== $name: $((SECONDS - t0)) s"
    rm -f "$log"
}
for s in $sections; do
    case "$s" in
        kernels) run kernels "$bin/test_kernels" ;;
        bench-kernels) "$bin/test_kernels" --bench ;;
        resources) run resources tests/gpu/resources.sh ;;
        backend) run backend "$bin/test_backend" $( [ -f "$ids" ] && echo "$ids") ;;
        train)
            run train-kernels "$bin/test_train_kernels"
            if [ -x "$bin/test_train_gpu" ]; then run train-gpu "$bin/test_train_gpu"; fi ;;
        *) echo "run.sh: unknown section '$s'" >&2; exit 2 ;;
    esac
done
echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
