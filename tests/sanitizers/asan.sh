#!/usr/bin/env bash
# make test-asan: the whole suite (every cmocka binary and every tests/test_*.sh, whose CLI runs
# go through $SINKBENCH) built with AddressSanitizer + UndefinedBehaviorSanitizer into its own
# build dir, so sanitizer objects never mix with the normal build. Any report fails the test
# that produced it: ASan and UBSan abort (halt_on_error), LeakSanitizer exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${ASAN_BUILD:-build-asan}
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
jobs=$(nproc 2>/dev/null || echo 2)
t0=$SECONDS
tests=$(ls tests/test_*.c | sed "s|^tests/\(.*\)\.c$|$B/tests/\1|")
# -O2 as the normal build: gcc's -Werror diagnostics differ between levels (-O1 adds
# false -Wrestrict / -Wformat-truncation reports), and the suite runs faster
mkdir -p "$B"
make -k -j"$jobs" BUILD="$B" OPT="-O2 $SAN" "$B/sinkbench" $tests >"$B/build.log" 2>&1 || {
    grep -E 'error|Error' "$B/build.log" | head -n 20; echo "test-asan: build failed (log: $B/build.log)"; exit 1; }
echo "test-asan: built in $((SECONDS - t0)) s"
supp=$PWD/tests/sanitizers
# quarantine 16 MiB (default 256): freed memory parked in quarantine shows up as RSS growth,
# which the stream soak test measures; 16 MiB still catches use-after-free in these tests
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:quarantine_size_mb=16"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# passive waiting keeps idle OpenMP workers off the CPU (2 cores shared by every test)
export OMP_WAIT_POLICY=passive
export SINKBENCH=$PWD/$B/sinkbench
# tests that measure time or memory read this to relax what a sanitizer distorts
export SB_UNDER_SANITIZER=asan
tests/run_tests.sh "$B/tests"
echo "test-asan: done in $((SECONDS - t0)) s"
