#!/usr/bin/env bash
# Runs the libFuzzer targets (build them first: make fuzz), each from a scratch copy of its
# seed corpus, in parallel (one process per target, at most JOBS at a time), and writes
# per-target statistics.
#
#   tests/fuzz/run_fuzz.sh [--smoke] [--jobs N] [--out DIR] [--bin DIR] SECONDS [TARGET...]
#
# SECONDS is each target's budget. TARGETs are names (tokfile) or binaries (fuzz_tokfile);
# default: every build-fuzz/fuzz_* binary. A target that crashes is restarted for the rest of
# its budget (so a long campaign collects every crash, not just the first), except with
# --smoke, where the first crash stops it. Outputs in DIR (default build-fuzz/runs/<time>):
#   <target>/corpus/      the grown corpus (seed it back into tests/fuzz/corpus/ by hand)
#   <target>/artifacts/   crash-*, leak-*, timeout-*, oom-* inputs (add fixed ones to regress/)
#   <target>/log.txt      libFuzzer's output
#   stats.csv, stats.json target, seconds, execs, execs_per_s, crashes, corpus_files
# One summary line per target goes to stdout. Exit status 1 if any target found a crash.
# FUZZ_ARGS adds libFuzzer flags (e.g. FUZZ_ARGS=-use_value_profile=1).
# The binaries need only the Debian shared libraries they were built against
# (libopenblas, libhdf5, libcjson, libinih, zlib, libomp): they run on any machine with
# scripts/install_deps.sh's packages and libomp5, without a rebuild.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
smoke=0; jobs=$(nproc); out=""; bindir=build-fuzz
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) smoke=1; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --bin) bindir=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] && [[ "$1" =~ ^[0-9]+$ ]] || { echo "usage: $0 [--smoke] [--jobs N] [--out DIR] [--bin DIR] SECONDS [TARGET...]" >&2; exit 2; }
secs=$1; shift
targets=()
if [ $# -gt 0 ]; then
    for t in "$@"; do t=${t#fuzz_}; targets+=("$t"); done
else
    for b in "$bindir"/fuzz_*; do
        case "$b" in *.d|*.o) continue ;; esac
        [ -x "$b" ] && targets+=("$(basename "$b" | sed 's/^fuzz_//')")
    done
fi
[ ${#targets[@]} -gt 0 ] || { echo "run_fuzz: no fuzz binaries in $bindir (run make fuzz)" >&2; exit 2; }
for t in "${targets[@]}"; do
    [ -x "$bindir/fuzz_$t" ] || { echo "run_fuzz: $bindir/fuzz_$t is missing (run make fuzz)" >&2; exit 2; }
done
[ -d "$bindir" ] || { echo "run_fuzz: no directory $bindir (run make fuzz)" >&2; exit 2; }
bindir=$(cd "$bindir" && pwd)
[ -n "$out" ] || out=$bindir/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
out=$(cd "$out" && pwd)

dict_for() {
    case "$1" in
    safetensors|st_index|model|hfconfig|tokenizer_json) echo "-dict=$root/tests/fuzz/dict/json.dict" ;;
    train_config|study_config) echo "-dict=$root/tests/fuzz/dict/ini.dict" ;;
    esac
}

# One target for its whole budget; writes $out/$t/stats (execs crashes).
run_target() {
    local t=$1 d=$out/$1
    mkdir -p "$d/corpus" "$d/artifacts"
    [ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$d/corpus/"
    local start=$SECONDS left=$secs execs=0 runs=0
    : >"$d/log.txt"
    while [ "$left" -gt 0 ]; do
        runs=$((runs + 1))
        # -rss_limit_mb / -malloc_limit_mb: an allocation sized by the input beyond 2 GB is a bug
        ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
            "$bindir/fuzz_$t" -max_total_time="$left" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$d/artifacts/" $(dict_for "$t") ${FUZZ_ARGS:-} "$d/corpus" \
            >>"$d/log.txt" 2>&1
        local rc=$?
        # libFuzzer prints its final stats once per run: sum them over the restarts
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$d/log.txt" | awk '{s += $NF} END {print s + 0}')
        [ "$rc" -eq 0 ] && break
        [ "$smoke" -eq 1 ] && break
        # drop the crashing inputs from the working corpus, or the restart dies on them at once
        local a sum
        for a in "$d/artifacts"/*; do
            [ -f "$a" ] || continue
            sum=$(sha1sum <"$a" | cut -c1-40)
            find "$d/corpus" -type f -exec sha1sum {} + | awk -v s="$sum" '$1 == s {print $2}' | xargs -r rm -f
        done
        left=$((secs - (SECONDS - start)))
        [ "$runs" -ge 200 ] && break
    done
    local crashes; crashes=$(find "$d/artifacts" -type f | wc -l)
    local corpus; corpus=$(find "$d/corpus" -type f | wc -l)
    echo "$execs $crashes $corpus $((SECONDS - start))" >"$d/stats"
}

pids=()
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    run_target "$t" &
    pids+=($!)
done
wait

echo "target,seconds,execs,execs_per_s,crashes,corpus_files" >"$out/stats.csv"
json="["
fail=0
for t in "${targets[@]}"; do
    read -r execs crashes corpus took <"$out/$t/stats"
    [ "$took" -gt 0 ] || took=1
    rate=$((execs / took))
    echo "$t,$took,$execs,$rate,$crashes,$corpus" >>"$out/stats.csv"
    json+=$(printf '%s\n  {"target": "%s", "seconds": %d, "execs": %d, "execs_per_s": %d, "crashes": %d, "corpus_files": %d}' \
        "$([ "$json" = "[" ] || echo ,)" "$t" "$took" "$execs" "$rate" "$crashes" "$corpus")
    printf 'fuzz_%-16s %10d execs in %4ds (%6d/s), %d crash(es), corpus %d\n' "$t" "$execs" "$took" "$rate" "$crashes" "$corpus"
    if [ "$crashes" -gt 0 ]; then
        fail=1
        for a in "$out/$t/artifacts"/*; do echo "    $a"; done
        grep -m 3 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$out/$t/log.txt" | sed 's/^/    /'
    fi
done
printf '%s\n]\n' "$json" >"$out/stats.json"
echo "run_fuzz: stats in $out/stats.csv and $out/stats.json"
exit $fail
