#!/usr/bin/env bash
# The paper's Table 2 on this machine's GPU, timed: each model at its real shape (random bf16
# weights, `sinkbench init`; the perplexities mean nothing, the times are what the table
# costs), its five cells 0/1/2/4/8 + W (W + K = the pre-training window) over TOKENS tokens,
# one `sinkbench ppl --device cuda` each, as docs/TABLE2.md runs them on the real checkpoints.
# Per cell: evaluation time and the whole command (loading; the first run of a checkpoint also
# hashes it). Writes OUT_DIR/table2_gpu.json and OUT_DIR/TABLE2_GPU.md with GPU, driver, git.
#
#   bench/gpu/table2_gpu.sh [OUT_DIR]      (default docs/bench/gpu)
# Environment: SINKBENCH (bin/sinkbench), MODELS (default "llama2-7b falcon-7b mpt-7b
# pythia-12b"; "tiny" checks the script), DEVICE (cuda), TOKENS (400000), WORK (scratch, /tmp/sb_table2_gpu: one model at a time, up to
# 24 GB for Pythia-12B, removed after its cells).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source bench/table2_shapes.sh
sb=${SINKBENCH:-bin/sinkbench}
outdir=${1:-docs/bench/gpu}
models=${MODELS:-"llama2-7b falcon-7b mpt-7b pythia-12b"}
n=${TOKENS:-400000}
dev=${DEVICE:-cuda}
work=${WORK:-/tmp/sb_table2_gpu}
mkdir -p "$work" "$outdir"
say() { printf '[table2-gpu %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
jget() { sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$2" | tr -d '"'; }
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo unknown)
rev=${SINKBENCH_GIT_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
say "gpu: $gpu, git $rev, $n tokens per cell"
cells=() rows=()
t_all=$(now)
for name in $models; do
    IFS='|' read -r layers cache vocab flags <<<"$(table2_shape "$name")"
    dir=$work/$name
    awk -v n=$((n + 1)) -v v="$vocab" 'BEGIN { srand(7); for (i = 0; i < n; i++) print int(rand() * v) }' >"$work/ids.ids"
    t0=$(now)
    # shellcheck disable=SC2086
    "$sb" init --vocab "$vocab" --layers "$layers" $flags --dtype bf16 --seed 1 --out "$dir" >/dev/null
    say "$name: random weights in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s"
    for k in 0 1 2 4 8; do
        if [ $k = 0 ]; then p=window:$cache; else p=sinks:$k:$((cache - k)); fi
        t0=$(now)
        "$sb" ppl --model "$dir" --data "$work/ids.ids" --tokens $((n + 1)) --policy "$p" --device "$dev" \
            --max-memory 120G --json >"$work/cell.json"
        cmd_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
        wall=$(jget wall_s "$work/cell.json")
        tps=$(jget tokens_per_s "$work/cell.json")
        say "$name $p: ${wall} s of evaluation (${tps} tokens/s), ${cmd_s} s in all"
        cells+=("$(printf '{"model":"%s","policy":"%s","tokens":%s,"eval_s":%s,"command_s":%s,"tokens_per_s":%s}' \
            "$name" "$p" "$n" "$wall" "$cmd_s" "$tps")")
        rows+=("| $name | \`$p\` | $(printf '%.1f' "$wall") | $cmd_s | $(printf '%.0f' "$tps") |")
    done
    rm -rf "$dir"
done
total=$(awk -v a="$t_all" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
evals=$(printf '%s\n' "${cells[@]}" | sed -n 's/.*"eval_s":\([0-9.]*\).*/\1/p' | awk '{ s += $1 } END { printf "%.0f", s }')
cmds=$(printf '%s\n' "${cells[@]}" | sed -n 's/.*"command_s":\([0-9.]*\).*/\1/p' | awk '{ s += $1 } END { printf "%.0f", s }')
{
    printf '{"benchmark":"table2_gpu","gpu":"%s","git_rev":"%s","date_utc":"%s","tokens_per_cell":%s,' \
        "$gpu" "$rev" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$n"
    printf '"eval_s_total":%s,"commands_s_total":%s,"elapsed_s_with_random_init":%s,"cells":[' "$evals" "$cmds" "$total"
    (IFS=,; printf '%s' "${cells[*]}")
    printf ']}\n'
} >"$outdir/table2_gpu.json.tmp"
mv "$outdir/table2_gpu.json.tmp" "$outdir/table2_gpu.json"
{
    echo "# The paper's Table 2 on one GPU: time per cell"
    echo
    echo "\`bench/gpu/table2_gpu.sh\` on \`$gpu\`, git \`$rev\`: random bf16 weights of each model's shape, $n tokens per cell, one \`sinkbench ppl --device $dev\` per cell (exact mode, bf16 compute on a GPU)."
    echo
    echo "| model | policy | evaluation s | command s (load, first-run hash) | tokens/s |"
    echo "|---|---|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "The whole table (${#cells[@]} cells): **$cmds s** of commands ($evals s of evaluation); $total s with making the random weights."
} >"$outdir/TABLE2_GPU.md.tmp"
mv "$outdir/TABLE2_GPU.md.tmp" "$outdir/TABLE2_GPU.md"
say "wrote $outdir/table2_gpu.json and $outdir/TABLE2_GPU.md: $cmds s for ${#cells[@]} cells"
