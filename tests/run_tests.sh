#!/usr/bin/env bash
# Runs every cmocka binary in $1 and every tests/test_*.sh, then prints one summary line
# "N passed, N failed" that CI reads. Exit status is non-zero if anything failed.
set -u
bindir=${1:-build/tests}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
passed=0; failed=0; failed_names=()
run_one() {
    local name=$1; shift
    local log; log=$(mktemp)
    local t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1)); echo "PASS $name ($((SECONDS - t0))s)"
    else
        failed=$((failed + 1)); failed_names+=("$name"); echo "FAIL $name ($((SECONDS - t0))s)"
        sed 's/^/    /' "$log" | tail -n 60
    fi
    grep -E '^(SKIP|\[  SKIPPED \])' "$log" | sed 's/^/    /' || true
    rm -f "$log"
}
for t in "$bindir"/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue ;; esac
    run_one "$(basename "$t")" "$t"
done
for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" bash "$t"
done
echo
[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
