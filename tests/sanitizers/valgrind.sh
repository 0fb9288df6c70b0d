#!/usr/bin/env bash
# make test-valgrind: a representative subset under valgrind memcheck: a few cmocka binaries
# (error paths, HDF5, safetensors, policies) and small CLI runs of init, info, ppl (exact and
# decode, interrupted and resumed), latency, attention, tokenizer-train/tokenize and train.
# Zero errors and zero definite/indirect leaks, or it fails. Uses the normal build (-O2 -g).
set -uo pipefail
cd "$(dirname "$0")/../.."
t0=$SECONDS
if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "test-valgrind: installing valgrind" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq --no-install-recommends valgrind >/dev/null
    fi
    command -v valgrind >/dev/null || { echo "test-valgrind: valgrind is not installed (apt-get install valgrind)"; exit 1; }
fi
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" all >/dev/null || { echo "test-valgrind: build failed"; exit 1; }
# one thread: OpenBLAS / OpenMP pools add nothing to what memcheck can find, only time
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
supp=tests/sanitizers/valgrind.supp
VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --track-fds=no --suppressions="$supp" --num-callers=30)
T=$(mktemp -d /tmp/sb_valgrind.XXXXXX)
trap 'rm -rf "$T"' EXIT
passed=0 failed=0
# run NAME WANT_STATUS CMD...: the command's status must be WANT (valgrind's own is 99)
run() {
    local name=$1 want=$2; shift 2
    local t=$SECONDS
    "${VG[@]}" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        passed=$((passed + 1)); echo "PASS $name ($((SECONDS - t))s)"
    else
        failed=$((failed + 1)); echo "FAIL $name (status $rc, want $want; 99 = memcheck errors)"
        sed 's/^/    /' "$T/err" | tail -n 60
    fi
}
# private copies: a rebuild in the shared tree must not swap a binary mid-run
mkdir -p "$T/bin"
cp bin/sinkbench "$T/bin/"
for b in test_common test_h5 test_safetensors test_policy test_ids test_provenance; do
    [ -x build/tests/$b ] && cp build/tests/$b "$T/bin/" && run "$b" 0 "$T/bin/$b"
done
SB=$T/bin/sinkbench
run "init" 0 $SB init --arch llama --vocab 256 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --ctx 64 \
    --seed 3 --out "$T/m"
run "info" 0 $SB info --model "$T/m" --json
awk 'BEGIN { srand(5); for (i = 0; i < 600; i++) printf "%d%s", int(rand() * 256), (i % 20 == 19) ? "\n" : " " }' >"$T/d.ids"
run "ppl exact" 0 $SB ppl --model "$T/m" --data "$T/d.ids" --policy sinks:4:28 --chunk 64 --out "$T/p.h5" --json
run "ppl decode" 0 $SB ppl --model "$T/m" --data "$T/d.ids" --policy window:32 --mode decode --json
run "ppl recompute" 0 $SB ppl --model "$T/m" --data "$T/d.ids" --tokens 120 --policy recompute:16 --json
# an interrupted ppl (SIGINT raised at the first chunk by the test hook) and its resume
SB_TEST_SIGNAL_AT=2 run "ppl interrupted" 130 $SB ppl --model "$T/m" --data "$T/d.ids" --policy sinks:4:28 \
    --chunk 64 --out "$T/r.h5"
run "ppl resumed" 0 $SB ppl --model "$T/m" --data "$T/d.ids" --policy sinks:4:28 --chunk 64 --out "$T/r.h5" --resume
run "ppl bad input" 1 $SB ppl --model "$T/m" --data "$T/missing.ids"
run "ppl memory refusal" 1 $SB ppl --model "$T/m" --data "$T/d.ids" --max-memory 1K
run "latency" 0 $SB latency --model "$T/m" --policy sinks:4:28 --tokens 64 --out "$T/l.h5" --json
run "latency recompute" 0 $SB latency --model "$T/m" --policy recompute:16 --tokens 8 --json
run "attention" 0 $SB attention --model "$T/m" --data "$T/d.ids" --tokens 32 --out "$T/a.h5" --json
for i in $(seq 1 60); do echo "the cat sat on the mat $((i % 7)) and the dog ran"; done >"$T/t.txt"
run "tokenizer-train" 0 $SB tokenizer-train --in "$T/t.txt" --vocab 280 --out "$T/tok"
run "tokenize" 0 $SB tokenize --model "$T/tok" --in "$T/t.txt" --out "$T/t.tok"
cat >"$T/train.ini" <<INI
[model]
vocab = 256
dim = 16
layers = 1
heads = 2
kv_heads = 1
ffn = 32
ctx = 32
[data]
train = $T/d.ids
heldout = $T/d.ids
seq_len = 16
[optim]
steps = 3
warmup = 1
batch = 2
[run]
threads = 1
eval_interval = 3
INI
run "train" 0 $SB train --config "$T/train.ini" --out "$T/trained" --quiet
echo
echo "test-valgrind: $passed passed, $failed failed in $((SECONDS - t0)) s"
[ "$failed" -eq 0 ]
