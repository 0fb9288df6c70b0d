#!/usr/bin/env bash
# Decode and prefill speed of a random 25.8M-parameter Llama (llama2.c's 25M shape: dim 512,
# 8 layers, 8 heads, hidden 1376, vocab 512), the model issue 11 compares against a widely
# used C/C++ engine: tokens/s of a 128-token generation (dense cache from empty, one token per
# forward) and of a 512-token prefill (exact mode), fp32 weights.
#
#   bench/decode_25m.sh [BIN...]   default: bin/sinkbench
# With several binaries (e.g. one built at an older revision, see bench/decode_compare.sh)
# the runs alternate, so a noisy machine hits all of them alike. Output: one JSON object on
# stdout with every run, the medians, machine, threads and git revision.
# Knobs: BENCH_THREADS [2], BENCH_REPS [7].
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(bin/sinkbench)
threads=${BENCH_THREADS:-2}
reps=${BENCH_REPS:-7}
work=$(mktemp -d "${TMPDIR:-/tmp}/sb_dec25.XXXXXX")
trap 'rm -rf "$work"' EXIT
"${bins[0]}" init --arch llama --vocab 512 --dim 512 --layers 8 --heads 8 --ffn 1376 --ctx 1024 --seed 1 \
    --out "$work/model" >/dev/null
awk 'BEGIN { srand(3); for (i = 0; i < 2048; i++) print int(rand() * 512) }' >"$work/x.ids"
for r in $(seq "$reps"); do
    for b in "${bins[@]}"; do
        # 129 tokens = 128 predictions: a generation of 128 tokens from an empty cache
        "$b" ppl --model "$work/model" --data "$work/x.ids" --tokens 129 --policy dense --mode decode \
            --threads "$threads" --json >"$work/d.json"
        "$b" ppl --model "$work/model" --data "$work/x.ids" --tokens 513 --policy dense --mode exact \
            --threads "$threads" --json >"$work/e.json"
        printf '%s\t%s\t%s\n' "$b" "$(cat "$work/d.json")" "$(cat "$work/e.json")" >>"$work/runs.tsv"
    done
done
python3 - "$work/runs.tsv" "$threads" <<'PY'
import json, os, statistics, sys, time
runs = []
for line in open(sys.argv[1]):
    b, d, e = line.rstrip("\n").split("\t")
    d, e = json.loads(d), json.loads(e)
    runs.append({"bin": b, "git_rev": d["git_rev"], "decode_tokens_per_s": d["tokens_per_s"],
                 "prefill_tokens_per_s": e["tokens_per_s"], "loadavg1": d.get("loadavg1")})
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
med = []
for b in dict.fromkeys(r["bin"] for r in runs):
    rs = [r for r in runs if r["bin"] == b]
    med.append({"bin": b, "git_rev": rs[0]["git_rev"],
                "decode_tokens_per_s": statistics.median(r["decode_tokens_per_s"] for r in rs),
                "prefill_tokens_per_s": statistics.median(r["prefill_tokens_per_s"] for r in rs)})
print(json.dumps({"model": "random llama 25.8M (dim 512, 8 layers, 8 heads, hidden 1376, vocab 512, fp32)",
                  "measure": "decode: 128-token generation from an empty dense cache; prefill: 512 tokens, exact mode",
                  "threads": int(sys.argv[2]), "cpu": cpu, "cores": os.cpu_count(),
                  "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "medians": med, "runs": runs}, indent=1))
PY
