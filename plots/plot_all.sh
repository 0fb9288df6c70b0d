#!/usr/bin/env bash
# Draws every figure the study's collectors listed in RESULTS/data/*.figures: one line per
# figure, tab-separated: script (plots/<script>.gp), data file, output base (PNG + SVG are
# written next to it), title, extra arguments. Fails if a figure could not be drawn.
#   usage: plots/plot_all.sh [RESULTS]      (default results)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
results=${1:-results}
if ! command -v gnuplot >/dev/null; then
    echo "plot_all: gnuplot not found (scripts/install_deps.sh installs gnuplot-nox); no figures drawn" >&2
    exit 1
fi
shopt -s nullglob
lists=("$results"/data/*.figures)
drawn=0 bad=0
for list in "${lists[@]}"; do
    while IFS=$'\t' read -r script data base title args; do
        [ -n "$script" ] || continue
        # shellcheck disable=SC2086  # args are plain words chosen by the collector
        if gnuplot -c "$here/$script.gp" "$data" "$base" "$title" $args 2> "$base.gnuplot.log" \
           && [ -s "$base.png" ] && [ -s "$base.svg" ]; then
            drawn=$((drawn + 1))
            rm -f "$base.gnuplot.log"
        else
            bad=$((bad + 1))
            echo "plot_all: $script.gp failed for $data (log: $base.gnuplot.log)" >&2
            sed 's/^/    /' "$base.gnuplot.log" | tail -n 5 >&2
        fi
    done < "$list"
done
echo "plot_all: $drawn figures drawn in $results/figures, $bad failed" >&2
[ "$bad" -eq 0 ]
