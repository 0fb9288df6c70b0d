#!/usr/bin/env bash
# Weight storage: convert bf16 to fp32 at load (--weights f32) vs keep bf16 compact with
# on-the-fly conversion in the matmuls (--weights native, the default for bf16/fp16 files).
# -> results/bench_weights.json: peak RSS, load time and tokens/s in decode and exact mode
# for each option, on a random model of TinyLlama-1.1B's shape stored as bf16
# (vocab 32000, dim 2048, 22 layers, 32 heads, 4 kv heads, ffn 5632).
#
# Every (option, mode, threads) runs in its own process (peak RSS is per run) and the grid
# is repeated BENCH_REPEAT times, interleaved, so a busy machine hurts both options alike;
# the JSON keeps every run and the best tokens/s per cell.
#
# Environment knobs: BENCH_WEIGHTS_MODEL (reuse a model dir instead of creating one),
# BENCH_THREADS ("1 2"), BENCH_REPEAT (2), BENCH_DECODE_N (8), BENCH_EXACT_N (256),
# BENCH_OUT (results/bench_weights.json). Needs about 2.2 GB of disk and 5 GB of RAM.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sb=${SINKBENCH:-bin/sinkbench}
bw=${BENCH_WEIGHTS_BIN:-build/bench/bench_weights}
threads=${BENCH_THREADS:-1 2}
repeat=${BENCH_REPEAT:-2}
decode_n=${BENCH_DECODE_N:-8}
exact_n=${BENCH_EXACT_N:-256}
out=${BENCH_OUT:-results/bench_weights.json}
say() { printf '[bench_weights] %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sb_bench_weights.XXXXXX")
trap 'rm -rf "$work"' EXIT
model=${BENCH_WEIGHTS_MODEL:-}
if [ -z "$model" ]; then
    model=$work/tinyllama_bf16
    say "model: random TinyLlama-1.1B shape, bf16 (about a minute)"
    $sb init --vocab 32000 --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --ctx 2048 \
        --dtype bf16 --seed 1 --out "$model" >/dev/null
fi
# the file in the page cache for every run alike
cat "$model/model.safetensors" >/dev/null

: >"$work/runs.jsonl"
for r in $(seq "$repeat"); do
    for t in $threads; do
        for w in f32 native; do
            say "round $r: $w, decode $decode_n tokens, $t threads"
            $bw --model "$model" --weights $w --mode decode --tokens "$decode_n" --warmup 2 --threads "$t" \
                >>"$work/runs.jsonl"
            say "round $r: $w, exact $exact_n tokens (chunk 128), $t threads"
            $bw --model "$model" --weights $w --mode exact --tokens "$exact_n" --chunk 128 --warmup 0 \
                --threads "$t" >>"$work/runs.jsonl"
        done
    done
done

mkdir -p "$(dirname "$out")"
python3 - "$work/runs.jsonl" "$out.tmp" <<'PY'
import json, os, platform, subprocess, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
for r in runs:
    k = "%s/%s/t%d" % (r["weights"], r["mode"], r["threads"])
    b = best.get(k)
    if b is None or r["tokens_per_s"] > b["tokens_per_s"]:
        best[k] = r
cpu = ""
try:
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
except Exception:
    pass
rev = os.environ.get("SINKBENCH_GIT_REV") or subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                                             capture_output=True, text=True).stdout.strip()
doc = {"benchmark": "weights", "machine": {"cpu": cpu, "cores": os.cpu_count(), "host": platform.node(),
                                            "loadavg_at_end": os.getloadavg()},
       "git_rev": rev, "best": best, "runs": runs}
json.dump(doc, open(sys.argv[2], "w"), indent=1)
PY
mv "$out.tmp" "$out"
say "wrote $out"
