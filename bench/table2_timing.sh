#!/usr/bin/env bash
# Expected time per token of the paper's Table 2 runs (Llama-2-7B, Falcon-7B, Pythia-12B,
# MPT-7B), measured on random models of the same shapes (`sinkbench init`).
#
# A full 7B-12B model does not fit a small machine in fp32, so each model is measured as two
# slices of its exact layer shape, with 1 and 2 layers, stored in bf16 (--dtype bf16):
#   t(L) = base + L * per_layer   =>   per_layer = t(2) - t(1),  base = t(1) - per_layer
# where base is the embedding, final norm, LM head and loss. The estimate for the real model
# is base + n_layers * per_layer. Two figures per model:
#   exact   `sinkbench ppl` (default exact mode: batched queries), what reproducing Table 2
#           runs; TOKENS tokens, so attention sees at most TOKENS keys, not the full cache
#   decode  `sinkbench latency`: one token per forward (generate/stream), DECODE_TOKENS timed
#           after DECODE_WARMUP, so again a short cache
# FULL=1 instead fills the whole Table 2 cache first (TOKENS = cache + 256, decode warmup =
# cache): slower, and includes attention over 2048/4096 keys.
#
# Usage: bench/table2_timing.sh [OUT.json]     (default results/table2_timing.json)
# Environment: SINKBENCH (bin/sinkbench), THREADS (all cores), MODELS (subset, e.g.
# "llama2-7b mpt-7b"), TOKENS (256), DECODE_WARMUP (8), DECODE_TOKENS (8), FULL (0),
# WORK (scratch directory for the slices; needs about 7 GB; removed afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
sb=${SINKBENCH:-bin/sinkbench}
out=${1:-results/table2_timing.json}
threads=${THREADS:-$(nproc)}
models=${MODELS:-"llama2-7b falcon-7b pythia-12b mpt-7b"}
tokens=${TOKENS:-256}
dwarm=${DECODE_WARMUP:-8}
dtok=${DECODE_TOKENS:-8}
full=${FULL:-0}
work=${WORK:-$(mktemp -d /tmp/sb_table2.XXXXXX)}
mkdir -p "$work" "$(dirname "$out")"
trap 'rm -rf "$work"' EXIT
[ -x "$sb" ] || { echo "table2_timing: $sb not found (run make)" >&2; exit 1; }

source bench/table2_shapes.sh
shape() { table2_shape "$1" || exit 2; }
jget() { sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$2" | tr -d '"'; }

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && rev="$rev-dirty"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_gb=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
entries=()
rows=()
for name in $models; do
    IFS='|' read -r layers cache vocab flags <<<"$(shape "$name")"
    policy="sinks:4:$((cache - 4))"
    n=$tokens; warm=$dwarm
    [ "$full" = 1 ] && { n=$((cache + tokens)); warm=$cache; }
    awk -v n="$n" -v v="$vocab" 'BEGIN { srand(1); for (i = 0; i < n; i++) print int(rand() * v) }' >"$work/ids.ids"
    declare -A ex=() de=() rss=()
    for L in 1 2; do
        dir="$work/$name-$L"
        # shellcheck disable=SC2086
        "$sb" init --vocab "$vocab" --layers "$L" $flags --dtype bf16 --seed 1 --out "$dir" >/dev/null
        "$sb" ppl --model "$dir" --data "$work/ids.ids" --policy "$policy" --threads "$threads" --json \
            >"$work/ppl.json"
        ex[$L]=$(awk -v t="$(jget tokens_per_s "$work/ppl.json")" 'BEGIN { printf "%.4f", 1000 / t }')
        "$sb" latency --model "$dir" --policy "$policy" --warmup "$warm" --tokens "$dtok" --threads "$threads" \
            --json >"$work/lat.json"
        de[$L]=$(jget mean_ms "$work/lat.json")
        rss[$L]=$(jget peak_rss_mb "$work/lat.json")
        rm -rf "$dir"
        echo "table2_timing: $name $L layer(s): exact ${ex[$L]} ms/token, decode ${de[$L]} ms/token" >&2
    done
    est() { awk -v a="$1" -v b="$2" -v L="$layers" 'BEGIN { p = b - a; printf "%.4f %.4f %.2f", p, a - p, (a - p) + L * p }'; }
    read -r ex_layer ex_base ex_total <<<"$(est "${ex[1]}" "${ex[2]}")"
    read -r de_layer de_base de_total <<<"$(est "${de[1]}" "${de[2]}")"
    entries+=("$(printf '{"model":"%s","layers":%s,"vocab":%s,"init_flags":"%s","policy":"%s","exact_tokens":%s,"decode_warmup":%s,"decode_tokens":%s,"exact_ms":{"1_layer":%s,"2_layers":%s,"per_layer":%s,"base":%s,"estimate":%s},"decode_ms":{"1_layer":%s,"2_layers":%s,"per_layer":%s,"base":%s,"estimate":%s},"peak_rss_mb_2_layers":%s}' \
        "$name" "$layers" "$vocab" "$flags" "$policy" "$n" "$warm" "$dtok" "${ex[1]}" "${ex[2]}" "$ex_layer" "$ex_base" \
        "$ex_total" "${de[1]}" "${de[2]}" "$de_layer" "$de_base" "$de_total" "${rss[2]}")")
    rows+=("| $name | $layers | ${ex[1]}, ${ex[2]} -> **$ex_total** | ${de[1]}, ${de[2]} -> **$de_total** |")
    unset ex de rss
done
{
    printf '{"benchmark":"table2_timing","git_rev":"%s","hostname":"%s","cpu_model":"%s","cores":%s,"mem_gb":%s,' \
        "$rev" "$(hostname)" "$cpu" "$(nproc)" "$mem_gb"
    printf '"threads":%s,"dtype":"bf16","full_cache":%s,"date_utc":"%s","loadavg1":%s,"models":[' \
        "$threads" "$([ "$full" = 1 ] && echo true || echo false)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$(cut -d' ' -f1 /proc/loadavg)"
    (IFS=,; printf '%s' "${entries[*]}")
    printf ']}\n'
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out" >&2
printf '| model | layers | exact ms/token: 1 layer, 2 layers, estimate | decode ms/token: 1 layer, 2 layers, estimate |\n|---|---|---|---|\n'
printf '%s\n' "${rows[@]}"
