#!/usr/bin/env bash
# sinkbench over MPI ranks (issue 14), with `mpirun -np 2|3 --oversubscribe` on this machine:
#  - ppl sharded: the per-token NLL equals a single process's within 1e-6 (bit-identical on the
#    cpu) for sinks, window, learned, recompute and the newline variant on three architectures
#    (Llama RoPE + GQA, GPT-NeoX-style LayerNorm + parallel + partial rotary, MPT-style ALiBi),
#    with shard boundaries past the first K+W tokens (2 ranks) and inside them (3 ranks, a
#    short stream), with threads inside the ranks too;
#  - the golden llama fixture matches its PyTorch goldens under mpirun -np 2;
#  - one result on rank 0 laid out as a single process's, with the mpi_* attributes; one JSON
#    line; dense, h2o and decode mode refused in one line; --max-memory per rank;
#  - a rank that fails (SB_TEST_FAIL_RANK=1) or dies (1:kill): one line, no result file, and
#    the finished parts saved; --resume then completes the run bit-identically;
#  - interrupted on every rank or on one (SB_TEST_SIGNAL_AT), resumed per rank; a state of
#    another rank count is refused;
#  - study run over 2 ranks makes the same cells as one process, and each reuses the other's.
# Skipped with a SKIP line when the binary is built without MPI or mpirun is missing.
set -u
cd "$(dirname "$0")/.."
SB=${SINKBENCH:-bin/sinkbench}
[ -x "$SB" ] || { echo "SKIP $SB not built"; exit 0; }
command -v mpirun >/dev/null || { echo "SKIP mpirun not installed (scripts/install_deps.sh installs Open MPI)"; exit 0; }
ldd "$SB" 2>/dev/null | grep -q 'libmpi\.' || { echo "SKIP $SB is built without MPI (make MPI=1)"; exit 0; }
T=$(mktemp -d /tmp/sb_test_mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_WAIT_POLICY=passive
# one machine: shared memory only (the UCX/OFI probes would double each launch's 0.2 s)
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
# Under make test-asan the ranks keep AddressSanitizer and UBSan but not LeakSanitizer: Open MPI
# unloads its components at MPI_Finalize with blocks still allocated, and their stacks then
# point into unmapped code that no suppression can name.
mpi_env=()
[ -z "${SB_UNDER_SANITIZER:-}" ] || mpi_env=(-x "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
# -q: Open MPI's own notice of a non-zero exit stays off, so stderr holds exactly our lines
mpi() { local n=$1; shift; mpirun -q -np "$n" --oversubscribe --allow-run-as-root --bind-to none "${mpi_env[@]}" "$@"; }
fails=0
# the checks of the background jobs below count through the file
fail() { echo "FAIL: $*"; fails=$((fails + 1)); echo x >>"$T/failed"; }
t0=$SECONDS
# nll values of a result, one per line
vals() { h5dump -d nll -y -w 0 -m %.9g "$1" 2>/dev/null |
         awk '/DATA {/ { on = 1; next } on && /}/ { exit } on { gsub(/[ ,]/, ""); if ($0 != "") print }'; }
# same A B WHAT: the nll datasets of A and B agree within 1e-6 per token
same() {
    local a b
    a=$(vals "$1" | wc -l) b=$(vals "$2" | wc -l)
    [ "$a" -gt 0 ] && [ "$a" -eq "$b" ] || { fail "$3: $a vs $b values"; return; }
    paste <(vals "$1") <(vals "$2") | awk -v what="$3" '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d }
        END { if (m > 1e-6) { printf "FAIL: %s: max |sharded - single| = %g\n", what, m; exit 1 } }' || fail "$3"
}
# one_line FILE PATTERN WHAT: stderr is exactly one line, matching
one_line() {
    [ "$(wc -l <"$1")" -eq 1 ] || { fail "$3: $(wc -l <"$1") stderr lines: $(head -c 600 "$1")"; return; }
    grep -qE -- "$2" "$1" || fail "$3: stderr lacks /$2/: $(cat "$1")"
}

# ---- three architectures, five policies; boundaries past K+W (2 ranks) and inside (3 ranks)
common=(--vocab 256 --dim 32 --layers 3 --heads 4 --ctx 64 --sink-token 255 --newline-token 10 --scale 2)
$SB init "${common[@]}" --arch llama --kv-heads 2 --seed 3 --out "$T/llama" >/dev/null || { echo "FAIL: init"; exit 1; }
$SB init "${common[@]}" --norm layer --norm-bias --parallel --rotary-frac 0.5 --mlp gelu --seed 4 --out "$T/neox" \
    >/dev/null || { echo "FAIL: init neox"; exit 1; }
$SB init "${common[@]}" --pos alibi --norm layer --mlp gelu --seed 5 --out "$T/alibi" >/dev/null \
    || { echo "FAIL: init alibi"; exit 1; }
awk 'BEGIN { srand(7); for (i = 0; i < 700; i++) printf "%d%s", int(rand() * 250), (i % 20 == 19) ? "\n" : " " }' >"$T/d.ids"
# the architectures side by side: most of a small run is the launcher's start-up
for arch in llama neox alibi; do
    for pol in sinks:4:12 window:16 learned:15 recompute:12 sinks:4:12:newline; do
        name=$arch-${pol//:/_}
        A=(--model "$T/$arch" --data "$T/d.ids" --policy "$pol" --threads 1)
        "$SB" ppl "${A[@]}" --chunk 16 --out "$T/$name.1.h5" >/dev/null 2>"$T/err" || { fail "$name single: $(cat "$T/err")"; continue; }
        mpi 2 "$SB" ppl "${A[@]}" --chunk 16 --out "$T/$name.2.h5" >/dev/null 2>"$T/err" || { fail "$name -np 2: $(cat "$T/err")"; continue; }
        same "$T/$name.1.h5" "$T/$name.2.h5" "$name, 2 ranks"
        # 36 tokens in chunks of 4, equal shares over 3 ranks: boundaries inside the first
        # K+W = 16 tokens (the balanced plan would give rank 0 nearly all of so short a stream)
        "$SB" ppl "${A[@]}" --chunk 4 --tokens 36 --out "$T/$name.s1.h5" >/dev/null 2>"$T/err" || { fail "$name short: $(cat "$T/err")"; continue; }
        SB_TEST_SHARDS=equal mpi 3 "$SB" ppl "${A[@]}" --chunk 4 --tokens 36 --out "$T/$name.s3.h5" >/dev/null 2>"$T/err" \
            || { fail "$name -np 3: $(cat "$T/err")"; continue; }
        same "$T/$name.s1.h5" "$T/$name.s3.h5" "$name, 3 ranks, 36 tokens"
        seg=$(h5dump -w 0 -a mpi_segments "$T/$name.s3.h5" | sed -n 's/.*(0): "\(.*\)"/\1/p')
        b1=$(echo "$seg" | sed 's/^\[\[0,\([0-9]*\)\].*/\1/')
        [ -n "$b1" ] && [ "$b1" -gt 0 ] && [ "$b1" -lt 16 ] || fail "$name: 3 ranks' first boundary $b1 is not inside K+W ($seg)"
    done &
done
wait
echo "architectures and policies: $((SECONDS - t0)) s"

# ---- the result: a single process's layout plus mpi_* attributes; one JSON line from rank 0
A=(--model "$T/llama" --data "$T/d.ids" --policy sinks:4:12 --chunk 16 --threads 1)
mpi 2 "$SB" ppl "${A[@]}" --json --out "$T/j.h5" >"$T/j.json" 2>"$T/err" || fail "json run: $(cat "$T/err")"
[ -s "$T/err" ] && fail "a good sharded run printed on stderr: $(cat "$T/err")"
[ "$(wc -l <"$T/j.json")" -eq 1 ] || fail "sharded --json: $(wc -l <"$T/j.json") lines on stdout"
for k in '"mpi":{"ranks":2' '"halo_share":' '"segments":\[\[0,' '"halos":\[' '"tokens_scored":699'; do
    grep -q "$k" "$T/j.json" || fail "sharded JSON lacks $k: $(cat "$T/j.json")"
done
[ "$(h5ls "$T/j.h5" | awk '{ print $1, $2, $3 }')" = "$(h5ls "$T/llama-sinks_4_12.1.h5" | awk '{ print $1, $2, $3 }')" ] \
    || fail "the sharded result's datasets differ from a single process's: $(h5ls "$T/j.h5")"
h5dump -A "$T/j.h5" >"$T/attrs"
for a in mpi_ranks mpi_segments mpi_halos mpi_halo_share mpi_forwarded mpi_hosts complete; do
    grep -q "ATTRIBUTE \"$a\"" "$T/attrs" || fail "sharded result lacks attribute $a"
done
ls "$T"/j.h5.* >/dev/null 2>&1 && fail "a finished sharded run left files: $(ls "$T"/j.h5.*)"
# threads inside the ranks: the same numbers as one process with as many threads
"$SB" ppl "${A[@]}" --threads 2 --out "$T/t1.h5" >/dev/null 2>&1 || fail "2-thread single run"
mpi 2 "$SB" ppl "${A[@]}" --threads 2 --out "$T/t2.h5" >/dev/null 2>"$T/err" || fail "2 ranks x 2 threads: $(cat "$T/err")"
same "$T/t1.h5" "$T/t2.h5" "2 ranks x 2 threads"

echo "result layout and threads: $((SECONDS - t0)) s"
# ---- the golden llama fixture under 2 ranks (side by side)
G=tests/fixtures/llama
for pol in sinks:4:16 sinks:1:16 window:16 recompute:16; do
    (
        g=$T/g-${pol//:/_}
        mpi 2 "$SB" ppl --model "$G" --data "$G/stream.ids" --policy "$pol" --chunk 32 --out "$g.h5" >/dev/null 2>"$g.err" \
            || { fail "golden $pol: $(cat "$g.err")"; exit; }
        python3 - "$G/golden.json" "$pol" <(vals "$g.h5") <<'EOF' || fail "golden $pol"
import json, sys
gold = json.load(open(sys.argv[1]))["nll"][sys.argv[2]]
ours = [float(v) for v in open(sys.argv[3]).read().split()]
worst = max(abs(a - b) for a, b in zip(ours, gold)) if len(ours) == len(gold) else float("inf")
if not worst <= 1e-4:
    print(f"FAIL: golden llama {sys.argv[2]} under 2 ranks: {len(ours)} values, max |NLL - golden| = {worst:.3g}")
    sys.exit(1)
EOF
    ) &
done

# ---- refusals: one line from rank 0, its status, no result (side by side)
# refused NAME STATUS PATTERN ARGS...
refused() {
    local name=$1 want=$2 pat=$3; shift 3
    mpi 2 "$SB" ppl "$@" --out "$T/$name.h5" >/dev/null 2>"$T/$name.err"
    local st=$?
    [ "$st" -eq "$want" ] || fail "$name under 2 ranks: status $st, want $want: $(cat "$T/$name.err")"
    one_line "$T/$name.err" "$pat" "$name"
    ls "$T/$name".h5 "$T/$name".h5.* >/dev/null 2>&1 && fail "$name under 2 ranks left $(ls "$T/$name".h5*)"
}
refused dense 2 "^sinkbench ppl: policy 'dense' attends to every earlier token: one stream cannot be split over MPI ranks" \
    --model "$G" --data "$G/stream.ids" --policy dense &
refused h2o 2 "^sinkbench ppl: policy 'h2o:2:2:8' has no exact plan" "${A[@]}" --policy h2o:2:2:8 &
refused decode 2 "^sinkbench ppl: --mode decode cannot be split" "${A[@]}" --mode decode &
refused maxmem 1 "^sinkbench ppl: policy sinks:4:12 over 700 tokens needs .* more than the --max-memory limit" \
    "${A[@]}" --max-memory 1K &
# --device cuda is cuda:<local rank> under MPI; a binary without CUDA refuses it once
ldd "$SB" | grep -q libcudart || refused cuda 2 "^sinkbench ppl: --device cuda: this sinkbench was built without CUDA" \
    "${A[@]}" --device cuda &
wait

echo "golden and refusals: $((SECONDS - t0)) s"
# ---- a rank that fails, a rank that dies: one line, no result; the finished parts resume
mpi 2 "$SB" ppl "${A[@]}" --out "$T/ref.h5" >/dev/null 2>&1 || fail "reference run"
SB_TEST_FAIL_RANK=1 mpi 2 "$SB" ppl "${A[@]}" --out "$T/f.h5" >/dev/null 2>"$T/err"
st=$?
[ "$st" -eq 1 ] || fail "a failing rank: status $st, want 1"
one_line "$T/err" "^sinkbench ppl: rank 1 of 2: failing on purpose .*nothing written, the finished part of 1 rank saved in $T/f.h5.resume.rank<r>" "failing rank"
[ -e "$T/f.h5" ] && fail "a failed run left a result"
ls "$T"/f.h5.tmp.* "$T/f.h5.lock" >/dev/null 2>&1 && fail "a failed run left its temp file or lock"
[ -f "$T/f.h5.resume.rank0" ] || fail "rank 0's finished part is not saved"
mpi 2 "$SB" ppl "${A[@]}" --out "$T/f.h5" --resume >/dev/null 2>"$T/err" || fail "resume after a failed rank: $(cat "$T/err")"
one_line "$T/err" "no saved state for rank 1 in $T/f.h5.resume.rank<r>; their parts start from the beginning" "resume note"
same "$T/ref.h5" "$T/f.h5" "resumed after a failed rank"
ls "$T"/f.h5.resume* >/dev/null 2>&1 && fail "states left after the resumed run completed"
SB_TEST_FAIL_RANK=1:kill mpi 2 "$SB" ppl "${A[@]}" --out "$T/k.h5" >/dev/null 2>"$T/err"
st=$?
[ "$st" -ne 0 ] || fail "a dead rank: status 0"
# rank 0 is signalled by the launcher while it waits for rank 1 (or, on a slow machine, while
# its own part still runs: then it stops, saves and says how to resume)
grep -v '^resume with: mpirun -np 2 ' "$T/err" >"$T/err1"
one_line "$T/err1" "^sinkbench ppl: (stopped by SIGTERM while waiting for the other ranks \(one may have died, or the job was cancelled\); nothing written|interrupted after [0-9]* of rank 0's)" "dead rank"
[ -e "$T/k.h5" ] && fail "a run with a dead rank left a result"
ls "$T"/k.h5.tmp.* "$T/k.h5.lock" >/dev/null 2>&1 && fail "a run with a dead rank left its temp file or lock"

echo "failing ranks: $((SECONDS - t0)) s"
# ---- interrupted on every rank (SIGTERM at the 4th chunk), then on rank 1 alone; resumed
SB_TEST_SIGNAL_AT=4:TERM mpi 2 "$SB" ppl "${A[@]}" --out "$T/s.h5" >/dev/null 2>"$T/err"
st=$?
[ "$st" -eq 143 ] || fail "interrupted on every rank: status $st, want 143: $(cat "$T/err")"
grep -q "^sinkbench ppl: interrupted after [0-9]* of rank 0's [0-9]* predictions, saved to $T/s.h5.resume.rank0" "$T/err" \
    || fail "interrupt line: $(cat "$T/err")"
cmd=$(sed -n 's/^resume with: //p' "$T/err")
case "$cmd" in "mpirun -np 2 "*" --resume") ;; *) fail "resume line: $cmd" ;; esac
[ -f "$T/s.h5.resume.rank0" ] && [ -f "$T/s.h5.resume.rank1" ] || fail "interrupted ranks' states missing: $(ls "$T")"
[ -e "$T/s.h5" ] && fail "an interrupted run left a result"
# another rank count: rank 0's and rank 1's states are for other shards
mpi 3 "$SB" ppl "${A[@]}" --out "$T/s.h5" --resume >/dev/null 2>"$T/err" && fail "3 ranks resumed 2 ranks' states"
grep -q "resume" "$T/err" || fail "3 ranks on 2 ranks' states: $(cat "$T/err")"
mpi 2 "$SB" ppl "${A[@]}" --out "$T/s.h5" --resume >/dev/null 2>"$T/err" || fail "resume: $(cat "$T/err")"
same "$T/ref.h5" "$T/s.h5" "resumed on every rank"
h5dump -w 0 -a mpi_resumed "$T/s.h5" | grep -qE '"\[[1-9][0-9]*,[1-9][0-9]*\]"' || fail "mpi_resumed: $(h5dump -a mpi_resumed "$T/s.h5")"
rm -f "$T/s.h5"
mpi 2 sh -c '[ "$OMPI_COMM_WORLD_RANK" = 1 ] && export SB_TEST_SIGNAL_AT=3; exec "$0" "$@"' "$SB" ppl "${A[@]}" \
    --out "$T/s.h5" >/dev/null 2>"$T/err"
st=$?
[ "$st" -eq 130 ] || fail "rank 1 interrupted: status $st, want 130: $(cat "$T/err")"
grep -q "^sinkbench ppl: rank 1 of 2 was interrupted; nothing written, [0-9]* of 699 predictions saved" "$T/err" \
    || fail "rank 1's interrupt: $(cat "$T/err")"
mpi 2 "$SB" ppl "${A[@]}" --out "$T/s.h5" --resume >/dev/null 2>"$T/err" || fail "resume of rank 1: $(cat "$T/err")"
same "$T/ref.h5" "$T/s.h5" "resumed after rank 1 alone stopped"

echo "interrupts: $((SECONDS - t0)) s"
# ---- the study: 2 ranks make the cells one process makes, and each reuses the other's
mkdir -p "$T/models"
cp -r "$T/llama" "$T/models/m1"
cp -r "$T/alibi" "$T/models/m2"
cat >"$T/exp.ini" <<EOF
[experiment]
name = tiny
command = ppl
data = $T/d.ids
models = m1 m2
[run stream]
policies = window:{W} sinks:4:{W-4} learned:{W-1} recompute:{W/4}
tokens = 300
EOF
study() { local res=$1; shift; "$@" study run --config "$T/exp.ini" --models-dir "$T/models" --threads 1 --results "$res"; }
study "$T/r1" "$SB" >/dev/null 2>"$T/err1" || fail "study, one process: $(tail -3 "$T/err1")"
study "$T/r2" mpi 2 "$SB" >/dev/null 2>"$T/err2" || fail "study, 2 ranks: $(tail -3 "$T/err2")"
grep -q "8 cells to run, 0 already done, 0 not applicable; 2 ranks" "$T/err2" || fail "study over 2 ranks: $(head -2 "$T/err2")"
grep -q "(rank 1)$" "$T/err2" || fail "rank 1 ran no cell: $(cat "$T/err2")"
[ "$(grep -c '^study tiny: \[[0-9]/8\] .* ok ' "$T/err2")" -eq 8 ] || fail "study over 2 ranks: $(cat "$T/err2")"
for f in $(cd "$T/r1/cells" && find . -name '*.h5'); do
    same "$T/r1/cells/$f" "$T/r2/cells/$f" "study cell $f"
    [ "$(sed 's|/r1/|/r2/|' "$T/r1/cells/$f.key")" = "$(cat "$T/r2/cells/$f.key")" ] || fail "cell key $f differs"
done
[ "$(cut -d, -f1-7 "$T/r1/tiny.csv")" = "$(cut -d, -f1-7 "$T/r2/tiny.csv")" ] || fail "tiny.csv differs between 1 and 2 ranks"
study "$T/r2" "$SB" >/dev/null 2>"$T/err" || fail "rerun on the ranks' cells"
grep -q "0 cells to run, 8 already done" "$T/err" || fail "one process does not reuse the ranks' cells: $(head -1 "$T/err")"
rm "$T/r1/cells/quick/tiny/m2/stream-sinks_4_60.h5"
study "$T/r1" mpi 2 "$SB" >/dev/null 2>"$T/err" || fail "2 ranks on one process's cells"
grep -q "1 cells to run, 7 already done" "$T/err" || fail "2 ranks do not resume cell by cell: $(head -1 "$T/err")"

echo "test_mpi: $((SECONDS - t0)) s"
[ -e "$T/failed" ] && exit 1
echo "all MPI checks passed"
