#!/usr/bin/env bash
# Kill-and-resume: ppl (exact sinks, exact dense, decode, recompute) and latency are stopped
# by SIGINT / SIGTERM at random moments (several seeds of random delays) and at exact chunks
# (the SB_TEST_SIGNAL_AT hook), then continued with the printed "resume with:" command. The
# per-token NLL must be bit-identical to an uninterrupted run; latency's counts and memory
# samples identical. A resume with other inputs, or from a damaged state file, is refused.
set -u
cd "$(dirname "$0")/.."
SB=${SINKBENCH:-bin/sinkbench}
[ -x "$SB" ] || { echo "SKIP $SB not built"; exit 0; }
T=$(mktemp -d /tmp/sb_test_resume.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_WAIT_POLICY=passive
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# the dataset's values, without the first line of h5dump (it names the file)
dump() { h5dump -d "$2" "$1" 2>&1 | sed 1d; }

$SB init --arch llama --vocab 256 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --ctx 64 --seed 3 \
    --scale 2 --out "$T/m" >/dev/null || { echo "FAIL: init"; exit 1; }
# sanitizer builds run far slower: fewer tokens keep the random delays inside the run
n=16000; [ -n "${SB_UNDER_SANITIZER:-}" ] && n=4000
awk -v n=$n 'BEGIN { srand(7); for (i = 0; i < n; i++) printf "%d%s", int(rand() * 256), (i % 20 == 19) ? "\n" : " " }' \
    >"$T/d.ids"

# name|options; every run uses one thread (the thread count is part of the resume hash anyway)
cases=(
    "sinks|--policy sinks:4:28 --chunk 16"
    "dense|--policy dense --chunk 64 --tokens 2000"
    "decode|--policy window:32 --mode decode --tokens 3000"
    "recompute|--policy recompute:24 --chunk 8 --tokens 800"
)
# the uninterrupted runs also time each case, so the random kills can land inside a run on a
# fast idle machine as on a loaded one
declare -A dur
for c in "${cases[@]}"; do
    name=${c%%|*}
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    $SB ppl --model "$T/m" --data "$T/d.ids" ${c#*|} --threads 1 --out "$T/$name.ref.h5" >/dev/null 2>"$T/err" \
        || fail "$name: uninterrupted run: $(cat "$T/err")"
    dur[$name]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
done

# Run to completion through interruptions: start, kill after `delay`, then follow the printed
# resume command until a run finishes. Every interrupted run must exit 130/143 and print
# exactly one "resume with:" line.
interrupted=0
run_killed() { # out sig delay args...
    local out=$1 sig=$2 delay=$3; shift 3
    "$SB" "$@" >/dev/null 2>"$T/err" &
    local pid=$!
    sleep "$delay"
    kill -"$sig" "$pid" 2>/dev/null
    wait "$pid"
    local rc=$? tries=0
    local want=130; [ "$sig" = TERM ] && want=143
    if [ "$rc" -eq "$want" ] && [ ! -s "$T/err" ] && [ ! -e "$out.resume" ]; then
        # killed before main() set up its handler (a sanitizer build starts slowly): the
        # default action ended it, nothing was started, so start again
        "$SB" "$@" >/dev/null 2>"$T/err"
        rc=$?
    fi
    while [ "$rc" -ne 0 ] && [ $tries -lt 3 ]; do
        tries=$((tries + 1))
        [ "$rc" -eq "$want" ] || { fail "$out: status $rc after SIG$sig, want $want: $(cat "$T/err")"; return; }
        interrupted=$((interrupted + 1))
        [ "$(grep -c '^resume with: ' "$T/err")" -eq 1 ] || { fail "$out: no single resume line: $(cat "$T/err")"; return; }
        local cmd; cmd=$(sed -n 's/^resume with: //p' "$T/err")
        case "$cmd" in *" --resume") ;; *) fail "$out: resume line does not end in --resume: $cmd"; return ;; esac
        [ -f "$out.resume" ] || { fail "$out: no state file after the interrupt"; return; }
        [ -e "$out" ] && { fail "$out: an interrupted run left a result file"; return; }
        ls "$T"/*.tmp.* >/dev/null 2>&1 && { fail "$out: temp files left: $(ls "$T"/*.tmp.*)"; return; }
        [ -e "$out.lock" ] && { fail "$out: lock file left"; return; }
        eval "$cmd" >/dev/null 2>"$T/err"
        rc=$?
    done
    [ "$rc" -eq 0 ] || fail "$out: resumed run failed ($rc): $(cat "$T/err")"
    [ -e "$out.resume" ] && fail "$out: state file left after completion"
}

# --- random moments: 4 seeds x the sinks case, 2 seeds x the others
for seed in 1 2 3 4; do
    for c in "${cases[@]}"; do
        name=${c%%|*}
        [ "$name" != sinks ] && [ "$seed" -gt 2 ] && continue
        # a random moment between 10% and 80% of the case's uninterrupted run time
        delay=$(awk -v s="$seed$name" -v d="${dur[$name]}" \
            'BEGIN { srand(length(s) * 7919 + s + 0); printf "%.3f", d * (0.1 + rand() * 0.7) }')
        sig=INT; [ $((seed % 2)) -eq 0 ] && sig=TERM
        out="$T/$name.$seed.h5"
        # shellcheck disable=SC2086
        run_killed "$out" "$sig" "$delay" ppl --model "$T/m" --data "$T/d.ids" ${c#*|} --threads 1 --out "$out"
        [ "$(dump "$out" nll)" = "$(dump "$T/$name.ref.h5" nll)" ] \
            || fail "$name seed $seed (SIG$sig after ${delay}s): per-token NLL differs from the uninterrupted run"
    done
done

# --- exact points: interrupted at the 1st and 6th chunk report by the test hook
for at in 1 6; do
    for c in "${cases[@]}"; do
        name=${c%%|*}
        out="$T/$name.at$at.h5"
        # shellcheck disable=SC2086
        SB_TEST_SIGNAL_AT=$at $SB ppl --model "$T/m" --data "$T/d.ids" ${c#*|} --threads 1 --out "$out" \
            >/dev/null 2>"$T/err"
        rc=$?
        [ "$rc" -eq 130 ] || { fail "$name at report $at: status $rc, want 130: $(cat "$T/err")"; continue; }
        # shellcheck disable=SC2086
        $SB ppl --model "$T/m" --data "$T/d.ids" ${c#*|} --threads 1 --out "$out" --resume >/dev/null 2>"$T/err" \
            || { fail "$name at report $at: resume failed: $(cat "$T/err")"; continue; }
        [ "$(dump "$out" nll)" = "$(dump "$T/$name.ref.h5" nll)" ] || fail "$name at report $at: NLL differs"
        [ "$(h5dump -a resumed_at "$out" 2>/dev/null | grep -c '(0)')" -eq 1 ] || fail "$name at report $at: no resumed_at"
    done
done
[ "$interrupted" -ge 4 ] || fail "only $interrupted of the random kills landed inside a run (runs too short?)"

# --- refusals: other inputs, damaged state; the state file survives a refusal
SB_TEST_SIGNAL_AT=2 $SB ppl --model "$T/m" --data "$T/d.ids" --policy sinks:4:28 --chunk 16 --threads 1 \
    --out "$T/x.h5" >/dev/null 2>&1
[ -f "$T/x.h5.resume" ] || fail "no state for the refusal tests"
cp "$T/x.h5.resume" "$T/state.bak"
expect_refusal() { # word args...
    local word=$1; shift
    $SB ppl --model "$T/m" --data "$T/d.ids" --threads 1 --out "$T/x.h5" --resume "$@" >/dev/null 2>"$T/err"
    local rc=$?
    [ "$rc" -eq 1 ] || fail "resume with $*: status $rc, want 1"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "resume with $*: not one stderr line: $(cat "$T/err")"
    grep -q -- "$word" "$T/err" || fail "resume with $*: stderr lacks '$word': $(cat "$T/err")"
    [ -e "$T/x.h5" ] && fail "resume with $*: a refused resume wrote a result"
}
expect_refusal "other inputs" --policy sinks:4:20 --chunk 16
expect_refusal "other inputs" --policy sinks:4:28 --chunk 32
expect_refusal "other inputs" --policy sinks:4:28 --chunk 16 --tokens 1000
cmp -s "$T/x.h5.resume" "$T/state.bak" || fail "a refused resume changed the state file"
head -c 100 "$T/state.bak" >"$T/x.h5.resume"
expect_refusal "not a complete resume state" --policy sinks:4:28 --chunk 16
cp "$T/state.bak" "$T/x.h5.resume"
printf '\x01' | dd of="$T/x.h5.resume" bs=1 seek=200 conv=notrunc 2>/dev/null
expect_refusal "corrupt" --policy sinks:4:28 --chunk 16
$SB ppl --model "$T/m" --data "$T/d.ids" --policy sinks:4:28 --threads 1 --resume >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q -- "--resume needs --out" "$T/err" || fail "--resume without --out is not a usage error"

# --- latency: counts, warmup and memory samples as in an unbroken run
lat=(latency --model "$T/m" --policy sinks:4:28 --tokens 8000 --sample-every 50 --threads 1)
$SB "${lat[@]}" --out "$T/lat.ref.h5" >/dev/null 2>"$T/err" || fail "latency: $(cat "$T/err")"
for seed in 1 2; do
    sig=INT; [ "$seed" -eq 2 ] && sig=TERM
    run_killed "$T/lat.$seed.h5" "$sig" "0.$((seed * 15))" "${lat[@]}" --out "$T/lat.$seed.h5"
    for d in sample_tokens sample_cache_bytes; do
        [ "$(dump "$T/lat.$seed.h5" $d)" = "$(dump "$T/lat.ref.h5" $d)" ] || fail "latency seed $seed: $d differs"
    done
    n_ref=$(h5dump -H -d step_ms "$T/lat.ref.h5" | grep -m1 -o '( [0-9]* )')
    n_got=$(h5dump -H -d step_ms "$T/lat.$seed.h5" | grep -m1 -o '( [0-9]* )')
    [ "$n_ref" = "$n_got" ] || fail "latency seed $seed: step count $n_got, want $n_ref"
done
SB_TEST_SIGNAL_AT=3000 $SB "${lat[@]}" --out "$T/lat.h.h5" >/dev/null 2>&1
[ $? -eq 130 ] || fail "latency: the hook did not interrupt"
$SB "${lat[@]}" --out "$T/lat.h.h5" --resume >/dev/null 2>"$T/err" || fail "latency resume: $(cat "$T/err")"
[ "$(dump "$T/lat.h.h5" sample_tokens)" = "$(dump "$T/lat.ref.h5" sample_tokens)" ] || fail "latency (hook): samples differ"

[ "$fails" -eq 0 ] && echo "ok ($interrupted random kills landed mid-run)"
[ "$fails" -eq 0 ]
