#!/usr/bin/env bash
# make bench -> results/bench_engine.json
#
# Engine throughput on a fixed random Llama model (vocab 4096, dim 384, 6 layers, 6 heads,
# ffn 1024, ctx 512) under sinks:4:508:
#   1. exact-mode tokens/s and achieved FLOP/s      (sinkbench ppl --json --mode exact)
#   2. decode-mode tokens/s                          (sinkbench ppl --json --mode decode)
#   3. OpenBLAS sgemm GFLOP/s at the model's shapes  (sinkbench bench sgemm), same run
#   4. decode latency and RSS at token ~2,000 and ~200,000 (sinkbench bench decode)
# and merges them with machine/threads/git rev (sinkbench bench report, atomic write).
#
# Environment knobs (defaults in brackets):
#   BENCH_LONG      tokens of the long decode stream [200000]; 200k decode steps take
#                   several minutes on 2 cores, BENCH_LONG=20000 gives a quick run
#   BENCH_EXACT_N   tokens scored in exact mode [16384]
#   BENCH_DECODE_N  tokens scored in decode mode [2048]
#   BENCH_THREADS   BLAS/OpenMP threads [all cores]
#   BENCH_OUT       output file [results/bench_engine.json]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sb=${SINKBENCH:-bin/sinkbench}
long=${BENCH_LONG:-200000}
exact_n=${BENCH_EXACT_N:-16384}
decode_n=${BENCH_DECODE_N:-2048}
threads=${BENCH_THREADS:-$(nproc)}
out=${BENCH_OUT:-results/bench_engine.json}
policy=sinks:4:508

work=$(mktemp -d "${TMPDIR:-/tmp}/sb_bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
model=$work/model
mkdir -p "$(dirname "$out")"

say() { printf '[bench] %s\n' "$*" >&2; }

say "model: random llama 4096/384/6/6/1024/512"
$sb init --arch llama --vocab 4096 --dim 384 --layers 6 --heads 6 --ffn 1024 --ctx 512 --seed 1 \
    --out "$model" >/dev/null

# Random token ids; the content does not change the cost of a forward.
awk -v n="$exact_n" 'BEGIN { srand(7); for (i = 0; i < n; i++) print int(rand() * 4096) }' >"$work/data.ids"

say "sgemm at the model's shapes ($threads threads)"
$sb bench sgemm --model "$model" --threads "$threads" >"$work/sgemm.json"

say "exact mode, $exact_n tokens, $policy"
$sb ppl --model "$model" --data "$work/data.ids" --policy $policy --mode exact --threads "$threads" \
    --json >"$work/exact.json"

say "decode mode, $decode_n tokens, $policy"
$sb ppl --model "$model" --data "$work/data.ids" --tokens "$decode_n" --policy $policy --mode decode \
    --threads "$threads" --json >"$work/decode.json"

at=2000
[ "$long" -gt $((at + 1000)) ] || { say "BENCH_LONG must exceed $((at + 1000))"; exit 2; }
say "decode latency at token $at and $long (this is the slow part: ${long} decode steps)"
$sb bench decode --model "$model" --policy $policy --at $at --long "$long" --window 500 \
    --threads "$threads" >"$work/latency.json"

$sb bench report --model "$model" --exact "$work/exact.json" --decode "$work/decode.json" \
    --sgemm "$work/sgemm.json" --latency "$work/latency.json" --out "$out"
