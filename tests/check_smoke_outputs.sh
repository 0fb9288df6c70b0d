#!/usr/bin/env bash
# Checks what `./run_all.sh --smoke` produced (CI runs it right after): every experiment's
# HDF5 file is complete (root attribute complete = 1) with its CSV beside it, every figure
# the collectors listed was drawn as a real PNG (signature, non-trivial size) and an SVG, the
# report and index.html exist, show every figure, say where the cells ran (cells_machines in
# every experiment file that has cells, a header line and one line per such experiment) and
# report no failed cell.
#   usage: tests/check_smoke_outputs.sh [RESULTS]      (default results/smoke)
set -uo pipefail
cd "$(dirname "$0")/.."
R=${1:-results/smoke}
bad=0
err() { echo "check_smoke_outputs: $*" >&2; bad=$((bad + 1)); }

for exp in ppl_stream sink_ablation cache_size score_policies latency attention training; do
    h5=$R/$exp.h5
    if [ ! -f "$h5" ]; then err "$h5 missing"; continue; fi
    h5dump -a complete "$h5" 2>/dev/null | grep -q '(0): 1' || err "$h5 is not complete (no complete=1 attribute)"
    [ -s "$R/$exp.csv" ] || err "$R/$exp.csv missing or empty"
    # training reads the models' own logs: it has no cells
    [ "$exp" = training ] && continue
    h5dump -w 0 -a cells_machines "$h5" 2>/dev/null | grep -q '(0): ".*): [0-9]* cells\{0,1\}, ' ||
        err "$h5 does not say where its cells ran (cells_machines)"
done

# a latency cell's key names its threads (timings depend on them); a memory cell's does not,
# so memory samples taken with other threads are reused
for k in "$R"/cells/smoke/latency/*/*.key; do
    [ -f "$k" ] || { err "no latency cell keys under $R/cells/smoke/latency"; break; }
    case "$(basename "$k")" in
        memory-*) ! grep -q '^threads ' "$k" || err "$k: a memory cell's key should not name threads" ;;
        *) grep -q '^threads [0-9]' "$k" || err "$k: a timed cell's key should name its threads" ;;
    esac
done

# figures every smoke run must have (one per kind), plus everything the collectors listed
expected=(ppl_stream_smoke-base sink_ablation cache_size score_policies latency_smoke-base latency_memory_smoke-base training)
listed=()
for list in "$R"/data/*.figures; do
    [ -f "$list" ] || continue
    while IFS=$'\t' read -r _ _ base _; do [ -n "$base" ] && listed+=("$(basename "$base")"); done < "$list"
done
declare -A seen=()
for f in "${expected[@]}" "${listed[@]}"; do
    [ -z "${seen[$f]:-}" ] || continue
    seen[$f]=1
    png=$R/figures/$f.png svg=$R/figures/$f.svg
    if [ ! -f "$png" ]; then err "$png missing"; continue; fi
    [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || err "$png is not a PNG"
    [ "$(stat -c %s "$png")" -gt 10000 ] || err "$png is suspiciously small ($(stat -c %s "$png") bytes)"
    grep -q '<svg' "$svg" 2>/dev/null || err "$svg missing or not SVG"
    grep -q "figures/$f.png" "$R/REPORT.md" 2>/dev/null || err "REPORT.md does not show $f.png"
done

for f in REPORT.md index.html; do [ -s "$R/$f" ] || err "$R/$f missing"; done
if grep -q "FAILED" "$R/REPORT.md" 2>/dev/null; then err "REPORT.md lists failed cells:"; grep "FAILED" "$R/REPORT.md" >&2; fi
grep -q "was not drawn" "$R/REPORT.md" 2>/dev/null && err "REPORT.md has undrawn figures"
grep -q -E '^Cells ran on (host .*threads? per cell\)|several machines: .*; each experiment says which)\.$' \
    "$R/REPORT.md" 2>/dev/null || err "REPORT.md's header does not say where the cells ran"
n_lines=$(grep -c '^Cells ran on: .* from first start to last finish\.$' "$R/REPORT.md" 2>/dev/null)
[ "${n_lines:-0}" -ge 5 ] || err "REPORT.md says where the cells ran for ${n_lines:-0} experiments, not the 5 with cells"

if [ "$bad" -gt 0 ]; then
    echo "check_smoke_outputs: $bad problem(s) in $R" >&2
    exit 1
fi
echo "check_smoke_outputs: $R ok (${#listed[@]} figures)"
