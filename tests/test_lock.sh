#!/usr/bin/env bash
# Two runs writing the same output: the second fails at once with one line naming the output
# and the pid holding it, and the first still completes. A lock file left by a dead run is no
# obstacle (flock dies with its holder), and a finished run removes its lock file.
set -u
cd "$(dirname "$0")/.."
SB=${SINKBENCH:-bin/sinkbench}
[ -x "$SB" ] || { echo "SKIP $SB not built"; exit 0; }
command -v flock >/dev/null || { echo "SKIP flock(1) not installed"; exit 0; }
T=$(mktemp -d /tmp/sb_test_lock.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_WAIT_POLICY=passive
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

$SB init --arch llama --vocab 256 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --ctx 64 --seed 3 \
    --out "$T/m" >/dev/null || { echo "FAIL: init"; exit 1; }
awk 'BEGIN { srand(3); for (i = 0; i < 30000; i++) printf "%d%s", int(rand() * 256), (i % 20 == 19) ? "\n" : " " }' \
    >"$T/d.ids"
ppl=(ppl --model "$T/m" --data "$T/d.ids" --policy sinks:4:28 --chunk 16 --threads 1)

expect_clash() { # what args...
    local what=$1; shift
    "$SB" "$@" >/dev/null 2>"$T/err"
    local rc=$?
    [ $rc -eq 1 ] || fail "$what: status $rc, want 1: $(cat "$T/err")"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$what: not one stderr line: $(cat "$T/err")"
    grep -q "is being written by another run" "$T/err" || fail "$what: unclear message: $(cat "$T/err")"
}

# --- a real clash: a long run holds out.h5, a second one on the same output fails
$SB "${ppl[@]}" --out "$T/o.h5" >/dev/null 2>"$T/err1" &
pid=$!
for _ in $(seq 1 100); do [ -s "$T/o.h5.lock" ] && break; sleep 0.02; done
[ -s "$T/o.h5.lock" ] || fail "the first run made no lock file"
expect_clash "second ppl" "${ppl[@]}" --out "$T/o.h5"
grep -q "pid $pid" "$T/err" || fail "the message does not name pid $pid: $(cat "$T/err")"
wait $pid || fail "the first run failed: $(cat "$T/err1")"
[ "$(h5dump -a complete "$T/o.h5" 2>/dev/null | grep -c '(0): 1')" -eq 1 ] || fail "the first run's result is not complete"
[ -e "$T/o.h5.lock" ] && fail "the finished run left its lock file"

# --- a lock held by another process (flock(1) stands in for a run)
flock "$T/h.h5.lock" sleep 3 &
holder=$!
sleep 0.3
expect_clash "ppl against flock(1)" "${ppl[@]}" --tokens 100 --out "$T/h.h5"
expect_clash "latency against flock(1)" latency --model "$T/m" --policy window:16 --tokens 8 --out "$T/h.h5"
expect_clash "attention against flock(1)" attention --model "$T/m" --data "$T/d.ids" --out "$T/h.h5"
[ -e "$T/h.h5" ] && fail "a refused run wrote its output"
ls "$T"/h.h5.tmp.* >/dev/null 2>&1 && fail "a refused run left a temp file"
kill $holder 2>/dev/null; wait $holder 2>/dev/null

# --- a stale lock file (its holder died): no obstacle
echo 999999 >"$T/s.h5.lock"
$SB "${ppl[@]}" --tokens 100 --out "$T/s.h5" >/dev/null 2>"$T/err" || fail "stale lock file blocked a run: $(cat "$T/err")"

# --- train: one trainer per output directory
cat >"$T/t.ini" <<INI
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
steps = 2
warmup = 1
batch = 2
[run]
threads = 1
INI
flock "$T/tr.lock" sleep 3 &
holder=$!
sleep 0.3
expect_clash "train on a locked directory" train --config "$T/t.ini" --out "$T/tr" --quiet
kill $holder 2>/dev/null; wait $holder 2>/dev/null

[ "$fails" -eq 0 ] && echo ok
[ "$fails" -eq 0 ]
