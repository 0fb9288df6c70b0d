#!/usr/bin/env bash
# End-to-end test of the study driver on tiny random models and an .ids stream (a few
# seconds): cells run in parallel, results/<exp>.h5 + .csv are written and agree with a
# direct `sinkbench ppl` run, a rerun skips finished cells and redoes those whose model
# changed, --force redoes all, failing cells are reported (exit 1) but still collected, bad
# configs fail naming file and key, an interrupted cell is resumed by the next run, `sinkbench latency` reports sane numbers and rejects bad
# input, the report renders, and the figures are drawn when gnuplot is present.
set -euo pipefail
cd "$(dirname "$0")/.."
sb=bin/sinkbench
[ -x "$sb" ] || { echo "FAIL: $sb is not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive
fail() { echo "FAIL: $*"; exit 1; }
expect() { grep -q -- "$1" "$2" || { echo "--- $2:"; cat "$2"; fail "expected '$1' in $2"; }; }

mkdir -p "$tmp/models"
common=(--vocab 64 --dim 32 --layers 2 --heads 2 --ctx 32 --newline-token 10)
"$sb" init "${common[@]}" --sink-token 63 --out "$tmp/models/m1" >/dev/null
"$sb" init "${common[@]}" --seed 2 --out "$tmp/models/m2" >/dev/null
awk 'BEGIN { s = 7; for (i = 0; i < 600; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%d ", s % 63 } }' \
    > "$tmp/s.ids"
cat > "$tmp/exp.ini" <<EOF
[experiment]
name = tiny
command = ppl
data = $tmp/s.ids
models = m1 m2
figures = curve bars
[run stream]
policies = window:{W} sinks:4:{W-4} learned:{W-1}
tokens = 500
tokens.smoke = 200
EOF
run() { "$sb" study run --config "$tmp/exp.ini" --results "$tmp/res" --models-dir "$tmp/models" --threads 1 "$@"; }

# ---- first run: 5 cells (learned does not apply to m2, which has no sink token)
run --jobs 2 2> "$tmp/err1" || { cat "$tmp/err1"; fail "study run failed"; }
expect "5 cells to run, 0 already done, 1 not applicable" "$tmp/err1"
h5dump -A "$tmp/res/tiny.h5" > "$tmp/attrs"
expect 'ATTRIBUTE "complete"' "$tmp/attrs"
expect 'ATTRIBUTE "git_rev"' "$tmp/attrs"
expect 'ATTRIBUTE "config"' "$tmp/attrs"
expect 'learned:31 does not apply to m2' "$tmp/attrs"
# where the cells ran: this machine, all five finished cells, one thread each
host=$(hostname)
h5dump -w 0 -a cells_machines "$tmp/res/tiny.h5" > "$tmp/machines"
expect "\"$host (.*, [0-9]* cores\{0,1\}): 5 cells, 1 thread each, git " "$tmp/machines"
[ "$(grep -c ' cells\{0,1\}, ' "$tmp/machines")" -eq 1 ] || fail "one machine expected in cells_machines"
h5dump -w 0 -a cells_machines_csv "$tmp/res/tiny.h5" > "$tmp/machines_csv"
expect "host,cpu_model,cores,cells,threads,git_revs,cell_hours,span_hours" "$tmp/machines_csv"
h5ls "$tmp/res/tiny.h5/cells/m1/stream-sinks_4_28/nll" > "$tmp/ls"
expect "Dataset {499}" "$tmp/ls"
[ "$(wc -l < "$tmp/res/tiny.csv")" -eq 7 ] || fail "tiny.csv should have a header and 6 rows"
# the collected perplexity is exactly that of a direct run of the same cell
direct=$("$sb" ppl --model "$tmp/models/m1" --data "$tmp/s.ids" --policy sinks:4:28 --tokens 500 --json |
         grep -o '"ppl":[0-9.e+-]*' | cut -d: -f2)
collected=$(awk -F, '$1 == "m1" && $3 == "sinks:4:28" { print $6 }' "$tmp/res/tiny.csv")
awk -v a="$direct" -v b="$collected" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 1 && d < 1e-3) }' ||
    fail "collected ppl $collected differs from direct $direct"
[ -s "$tmp/res/data/tiny_m1_curve.dat" ] || fail "no curve data"
expect 'sinks:4:28' "$tmp/res/cells/quick/tiny/m1/stream-sinks_4_28.h5.log"

# ---- resume: nothing to do; a changed model redoes its cells only; --force redoes all
run 2> "$tmp/err2"
expect "0 cells to run, 5 already done" "$tmp/err2"
sleep 1
"$sb" init "${common[@]}" --seed 3 --out "$tmp/models/m2" >/dev/null
run 2> "$tmp/err3"
expect "2 cells to run, 3 already done" "$tmp/err3"
run --force 2> "$tmp/err4"
expect "5 cells to run, 0 already done" "$tmp/err4"
run --mode smoke 2> "$tmp/err5"
expect "5 cells to run" "$tmp/err5"
awk -F, '$1 == "m1" && $3 == "window:32" { exit !($5 == 199) }' "$tmp/res/tiny.csv" || fail "smoke mode should score 199 tokens"
run 2> "$tmp/err5b"   # the quick cells survived the smoke run
expect "0 cells to run, 5 already done" "$tmp/err5b"

# ---- an interrupted cell (SB_TEST_SIGNAL_AT reaches the child) leaves <cell>.h5.resume; the
# next study run continues it with --resume and the result equals an unbroken run
cat > "$tmp/rexp.ini" <<EOF
[experiment]
name = rtiny
command = ppl
data = $tmp/s.ids
models = m1
[run stream]
policies = sinks:4:28
tokens = 500
args = --chunk 16
EOF
rrun() { "$sb" study run --config "$tmp/rexp.ini" --results "$tmp/rres" --models-dir "$tmp/models" --threads 1 "$@"; }
cell="$tmp/rres/cells/quick/rtiny/m1/stream-sinks_4_28.h5"
if SB_TEST_SIGNAL_AT=5 rrun 2> "$tmp/errr1"; then fail "an interrupted cell should fail the study run"; fi
expect "exit 130" "$tmp/errr1"
expect "next study run resumes the cell" "$tmp/errr1"
[ -f "$cell.resume" ] || fail "the interrupted cell left no state"
rrun 2> "$tmp/errr2" || { cat "$tmp/errr2"; fail "the resumed study run failed"; }
expect "1 cells to run, 0 already done" "$tmp/errr2"
expect "ok .* resumed" "$tmp/errr2"
[ -e "$cell.resume" ] && fail "the state is left after the resumed cell finished"
expect "^# sinkbench ppl .* --resume$" "$cell.log"
at=$(h5dump -a resumed_at "$cell" | sed -n 's/^ *(0): *\([0-9]*\).*/\1/p')
[ -n "$at" ] && [ "$at" -gt 0 ] || fail "the cell's result does not record resumed_at ($at)"
"$sb" ppl --model "$tmp/models/m1" --data "$tmp/s.ids" --policy sinks:4:28 --tokens 500 --chunk 16 --threads 1 \
    --out "$tmp/unbroken.h5" > /dev/null 2>&1
h5dump -d nll "$cell" | sed -n '/DATA/,$p' > "$tmp/nll_resumed"
h5dump -d nll "$tmp/unbroken.h5" | sed -n '/DATA/,$p' > "$tmp/nll_unbroken"
[ -s "$tmp/nll_unbroken" ] && cmp -s "$tmp/nll_resumed" "$tmp/nll_unbroken" || fail "resumed cell NLL differs from an unbroken run"
rrun 2> "$tmp/errr3"   # the key is that of the planned command: nothing left to do
expect "0 cells to run, 1 already done" "$tmp/errr3"
# a state the command refuses (here damaged) is removed and the cell runs afresh
if SB_TEST_SIGNAL_AT=5 rrun --force 2> /dev/null; then fail "the second interrupted run should fail"; fi
[ -f "$cell.resume" ] || fail "no state after the second interrupt"
printf 'garbage' > "$cell.resume"
rrun 2> "$tmp/errr4" || { cat "$tmp/errr4"; fail "a refused state should lead to a fresh run"; }
expect "resume refused" "$tmp/errr4"
[ -e "$cell.resume" ] && fail "the refused state is left"
if h5dump -a resumed_at "$cell" > /dev/null 2>&1; then fail "the fresh run records resumed_at"; fi

# ---- a failing cell: exit 1, the others still collected and the failure noted
if run --data "$tmp/missing.ids" 2> "$tmp/err6"; then fail "run with missing data should fail"; fi
expect "FAILED" "$tmp/err6"
h5dump -A "$tmp/res/tiny.h5" > "$tmp/attrs6"
expect "FAILED" "$tmp/attrs6"
run 2> /dev/null || fail "rerun after the failure should collect the finished cells again"

# ---- bad configs name the file and the key
printf '[experiment]\nname = x\ncommand = ppl\ndata = d\n[run r]\npolicies = dense\ntokenz = 1\n' > "$tmp/bad.ini"
if "$sb" study run --config "$tmp/bad.ini" --results "$tmp/res" 2> "$tmp/err7"; then fail "bad config accepted"; fi
expect "bad.ini" "$tmp/err7"
expect "tokenz" "$tmp/err7"
if "$sb" study run --config "$tmp/nonexistent.ini" 2> "$tmp/err8"; then fail "missing config accepted"; fi
expect "nonexistent.ini" "$tmp/err8"
set +e
"$sb" study run --config "$tmp/exp.ini" --mode turbo 2>/dev/null; [ $? -eq 2 ] || fail "--mode turbo should be a usage error"
"$sb" study frobnicate 2>/dev/null; [ $? -eq 2 ] || fail "unknown subcommand should be a usage error"
set -e

# ---- latency: the cache fills to K+W, percentiles are ordered, bad input is refused
"$sb" latency --model "$tmp/models/m1" --policy sinks:4:12 --tokens 20 --json --out "$tmp/lat.h5" > "$tmp/lat.json"
expect '"cache_len":16' "$tmp/lat.json"
expect '"warmup":16' "$tmp/lat.json"
awk -v RS=, -F: '/"p50_ms"/ { p50 = $2 } /"p99_ms"/ { p99 = $2 } /"mean_ms"/ { m = $2 }
     END { exit !(p50 > 0 && p50 <= p99 && m > 0) }' "$tmp/lat.json" || fail "latency percentiles out of order"
h5ls "$tmp/lat.h5/step_ms" > "$tmp/ls2"
expect "Dataset {20}" "$tmp/ls2"
"$sb" latency --model "$tmp/models/m1" --policy recompute:16 --tokens 3 --json > "$tmp/lat2.json"
expect '"recompute":"batched"' "$tmp/lat2.json"
"$sb" latency --model "$tmp/models/m1" --policy dense --tokens 40 --warmup 0 --sample-every 10 --json --out "$tmp/lat3.h5" > /dev/null
h5dump -d sample_cache_bytes "$tmp/lat3.h5" > "$tmp/dense"
expect "(0): 0, 5120, 10240, 15360, 20480" "$tmp/dense"   # K and V: 2 x 2 layers x 32 floats per token
set +e
"$sb" latency --model "$tmp/models/m1" --policy sinks:4:12 2>/dev/null; [ $? -eq 2 ] || fail "missing --tokens should be a usage error"
"$sb" latency --model "$tmp/models/m1" --policy sinks:4 --tokens 5 2>/dev/null; [ $? -eq 2 ] || fail "bad policy should be a usage error"
"$sb" latency --model "$tmp/models/m2" --policy learned:31 --tokens 5 2> "$tmp/err9"; [ $? -ne 0 ] || fail "learned on m2 should fail"
"$sb" latency --model "$tmp/nomodel" --policy dense --tokens 5 2> "$tmp/err10"; [ $? -eq 1 ] || fail "missing model should fail"
"$sb" latency --model "$tmp/models/m1" --policy dense --tokens 5 --data "$tmp/s.ids" --warmup 700 2> "$tmp/err11"; [ $? -eq 1 ] || fail "short data should fail"
set -e
expect "sink" "$tmp/err9"
expect "nomodel" "$tmp/err10"
expect "s.ids" "$tmp/err11"

# ---- report: every experiment gets a section, missing ones say so
"$sb" study report --results "$tmp/res" --experiments "tiny nothere" --wall-s 90 > "$tmp/report_path"
expect "$tmp/res/REPORT.md" "$tmp/report_path"
expect "^Cells ran on host $host (.* cores\{0,1\}, 1 thread per cell)\.$" "$tmp/res/REPORT.md"
expect "^Cells ran on: $host (.*): 5 cells, 1 thread each, .* from first start to last finish\.$" "$tmp/res/REPORT.md"
expect "^This invocation of the command took 1.5 minutes; each experiment gives the time its cells took\.$" "$tmp/res/REPORT.md"
expect "## 1. tiny" "$tmp/res/REPORT.md"
expect "| m1 |" "$tmp/res/REPORT.md"
expect "Not run" "$tmp/res/REPORT.md"
expect "<table>" "$tmp/res/index.html"

# ---- figures
if command -v gnuplot > /dev/null; then
    plots/plot_all.sh "$tmp/res" 2> "$tmp/plot.err" || { cat "$tmp/plot.err"; fail "plot_all failed"; }
    for f in tiny_m1 tiny_m2 tiny; do
        [ "$(head -c 8 "$tmp/res/figures/$f.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$f.png is not a PNG"
        [ -s "$tmp/res/figures/$f.svg" ] || fail "$f.svg missing"
    done
    "$sb" study report --results "$tmp/res" --experiments tiny > /dev/null
    expect "figures/tiny_m1.png" "$tmp/res/REPORT.md"
else
    echo "SKIP figures: gnuplot not installed"
fi
echo "test_study.sh: ok"
