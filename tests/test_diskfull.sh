#!/usr/bin/env bash
# Full disk and unwritable paths: /dev/full as the output, an unwritable directory, and (as
# root) a 64 KiB tmpfs that fills up mid-write. Each gives one clear stderr line and a non-zero
# status, leaves no temp file, and the result that was there before is untouched.
set -u
cd "$(dirname "$0")/.."
SB=${SINKBENCH:-bin/sinkbench}
[ -x "$SB" ] || { echo "SKIP $SB not built"; exit 0; }
T=$(mktemp -d /tmp/sb_test_diskfull.XXXXXX)
mnt=""
cleanup() { [ -n "$mnt" ] && umount "$mnt" 2>/dev/null; chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
export OMP_WAIT_POLICY=passive
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

$SB init --arch llama --vocab 256 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --ctx 64 --seed 3 \
    --out "$T/m" >/dev/null || { echo "FAIL: init"; exit 1; }
awk 'BEGIN { srand(3); for (i = 0; i < 40000; i++) printf "%d%s", int(rand() * 256), (i % 20 == 19) ? "\n" : " " }' \
    >"$T/d.ids"
# 40K random tokens: ~150 KiB of per-token NLL even compressed, more than the tmpfs holds
ppl=(ppl --model "$T/m" --data "$T/d.ids" --policy window:32 --chunk 256 --threads 1)

expect_fail() { # what word args...
    local what=$1 word=$2; shift 2
    "$SB" "$@" >/dev/null 2>"$T/err"
    local rc=$?
    [ $rc -ge 128 ] && { fail "$what: died by signal ($rc)"; return; }
    [ $rc -ne 0 ] || { fail "$what: succeeded"; return; }
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$what: not one stderr line: $(cat "$T/err")"
    grep -qi -- "$word" "$T/err" || fail "$what: stderr lacks '$word': $(cat "$T/err")"
}

# --- /dev/full: refused before anything runs, and the device stays a device
expect_fail "ppl --out /dev/full" "not a regular file" "${ppl[@]}" --tokens 100 --out /dev/full
expect_fail "latency --out /dev/full" "not a regular file" latency --model "$T/m" --policy window:8 --tokens 4 --out /dev/full
expect_fail "attention --out /dev/full" "not a regular file" attention --model "$T/m" --data "$T/d.ids" --out /dev/full
[ -c /dev/full ] || fail "/dev/full is no longer a character device"
# the JSON line itself cannot be written: an error, not a silent loss
$SB "${ppl[@]}" --tokens 100 --json >/dev/full 2>"$T/err"
rc=$?
[ $rc -eq 1 ] && grep -q "cannot write to stdout" "$T/err" || fail "ppl --json >/dev/full: status $rc: $(cat "$T/err")"

# --- an unwritable directory (a read-only tmpfs as root, whom permissions do not stop)
ro="$T/ro"
mkdir -p "$ro"
if [ "$(id -u)" -eq 0 ]; then
    if mount -t tmpfs -o size=64k,ro tmpfs "$ro" 2>/dev/null; then mnt=$ro; else ro=""; fi
else
    chmod 555 "$ro"
fi
if [ -n "$ro" ]; then
    expect_fail "ppl into a read-only directory" "$ro/x.h5" "${ppl[@]}" --tokens 100 --out "$ro/x.h5"
    printf '[model]\nvocab = 256\n[data]\ntrain = %s\n[optim]\nsteps = 1\nwarmup = 0\n' "$T/d.ids" >"$T/t.ini"
    expect_fail "train into a read-only directory" "$ro/t" train --config "$T/t.ini" --out "$ro/t"
    [ -n "$mnt" ] && umount "$mnt" && mnt=""
else
    echo "SKIP read-only directory: cannot mount a tmpfs here"
fi

# --- a full disk mid-write: the previous complete result survives
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP tiny tmpfs: not root"
elif ! mount -t tmpfs -o size=64k tmpfs "$T/full" 2>/dev/null && ! { mkdir -p "$T/full" && mount -t tmpfs -o size=64k tmpfs "$T/full" 2>/dev/null; }; then
    echo "SKIP tiny tmpfs: mount not permitted"
else
    mnt="$T/full"
    $SB "${ppl[@]}" --tokens 300 --out "$mnt/r.h5" >/dev/null 2>"$T/err" || fail "small run on the tmpfs: $(cat "$T/err")"
    cp "$mnt/r.h5" "$T/r.bak"
    expect_fail "ppl filling the tmpfs" "No space left" "${ppl[@]}" --out "$mnt/r.h5"
    cmp -s "$mnt/r.h5" "$T/r.bak" || fail "the previous result changed after a full-disk failure"
    [ "$(ls "$mnt")" = "r.h5" ] || fail "left behind on the full disk: $(ls "$mnt" | tr '\n' ' ')"
    # the resume state of an interrupted run on a full disk: a clear error, no partial state
    head -c 60000 /dev/zero >"$mnt/filler" 2>/dev/null
    SB_TEST_SIGNAL_AT=20 $SB "${ppl[@]}" --chunk 64 --out "$mnt/s.h5" >/dev/null 2>"$T/err"
    rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "interrupted run on a full disk: status $rc"
    [ -e "$mnt/s.h5.resume" ] && fail "a partial resume state was left on the full disk"
    rm -f "$mnt/filler"
    cmp -s "$mnt/r.h5" "$T/r.bak" || fail "the previous result changed"
    umount "$mnt" && mnt=""
fi

[ "$fails" -eq 0 ] && echo ok
[ "$fails" -eq 0 ]
