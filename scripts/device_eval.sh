#!/usr/bin/env bash
# Held-out evaluation of the default models for their CARD.md on a bigger machine (the same
# `sinkbench ppl` a CPU run of `make models` uses), driven in short calls:
#   scripts/device_eval.sh start MODEL_DIR   copy the model aside and start, detached, its
#                                            runs over both held-out streams (sinks:4:508)
#   scripts/device_eval.sh wait SECONDS      wait for the runs
#   scripts/device_eval.sh collect OUTDIR    copy the JSON results
# The streams come from devdata/*.txt.gz (gzip of data/text/heldout-*.txt).
set -euo pipefail
bin=${SB_BIN:-bin/sinkbench}
work=${SB_WORK:-/tmp/sbeval}
policy=${SB_POLICY:-sinks:4:508}
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
case "$flags" in
    *avx512f*) export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} ;;
    *avx2*) export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} ;;
esac
mkdir -p "$work"
case "$1" in
start)
    src=${2:?start needs a model directory}
    name=$(basename "$src")
    for s in austen book; do
        [ -f "$work/heldout-$s.txt" ] || gunzip -c "devdata/heldout-$s.txt.gz" >"$work/heldout-$s.txt"
    done
    [ -x "$work/sinkbench" ] || cp "$bin" "$work/sinkbench"
    rm -rf "$work/$name" && cp -r "$src" "$work/$name"
    setsid nohup "$work/sinkbench" ppl --model "$work/$name" --data "$work/heldout-austen.txt" --policy "$policy" \
        --threads 2 --json >"$work/$name.austen.json" 2>"$work/$name.austen.log" </dev/null &
    setsid nohup "$work/sinkbench" ppl --model "$work/$name" --data "$work/heldout-book.txt" --policy "$policy" \
        --threads 3 --json >"$work/$name.book.json" 2>"$work/$name.book.log" </dev/null &
    echo "started $name"
    ;;
wait)
    t0=$(date +%s)
    while pgrep -f "$work/sinkbench ppl" >/dev/null && [ $(( $(date +%s) - t0 )) -lt "${2:-500}" ]; do sleep 5; done
    pgrep -fa "$work/sinkbench ppl" || echo "all done"
    ;;
collect)
    out=${2:?collect needs OUTDIR}
    cp "$work"/*.json "$out/" 2>/dev/null || true
    for f in "$work"/*.log; do echo "== $f"; tr '\r' '\n' <"$f" | tail -2; done
    ;;
*) echo "unknown phase '$1'" >&2; exit 2 ;;
esac
