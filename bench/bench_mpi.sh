#!/usr/bin/env bash
# make bench -> results/bench_mpi.json: the scaling of one stream sharded over MPI ranks.
#
# The bench model (random Llama: vocab 4096, dim 384, 6 layers, 6 heads, ffn 1024, ctx 512,
# as bench/run_bench.sh) under sinks:4:508 in exact mode over BENCH_MPI_N tokens: one process
# with one thread against `mpirun -np RANKS` with one thread per rank, alternating, RUNS pairs;
# the speedup is the ratio of the medians of the evaluation's wall time (the JSON's wall_s: the
# slowest rank's for the sharded run; the launcher's and the load's seconds are reported
# apart, as command_s). Also reported: the halo's share of the forwarded tokens (each rank
# past the first computes L*W = 3048 tokens, aligned to the chunk grid, plus the sinks'
# chunk, before its first scored token), the efficiency that leaves and the speedup it
# predicts, and whether the sharded per-token NLL equals the single process's exactly. Each run
# also records the CPU seconds that other processes took on the machine meanwhile (/proc/stat
# less the run's own CPU time): the medians are given over every pair and over the quiet pairs
# (others under 5% of a core), which are the figure when there are any.
#
# Environment knobs [defaults]:
#   BENCH_MPI_N       tokens [65536]
#   BENCH_MPI_RANKS   ranks [2]
#   BENCH_MPI_RUNS    pairs of runs [5]
#   BENCH_MPI_MAX_PAIRS  on a shared machine: go on past RUNS pairs until RUNS of them were
#                     quiet, up to this many pairs [RUNS]
#   BENCH_MPI_OUT     output [results/bench_mpi.json]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sb=${SINKBENCH:-bin/sinkbench}
n=${BENCH_MPI_N:-65536}
ranks=${BENCH_MPI_RANKS:-2}
runs=${BENCH_MPI_RUNS:-5}
max_pairs=${BENCH_MPI_MAX_PAIRS:-$runs}
out=${BENCH_MPI_OUT:-results/bench_mpi.json}
policy=sinks:4:508
say() { printf '[bench-mpi] %s\n' "$*" >&2; }

if ! command -v mpirun >/dev/null || ! ldd "$sb" 2>/dev/null | grep -q 'libmpi\.'; then
    say "skipped: needs mpirun and a sinkbench built with MPI (scripts/install_deps.sh, then make)"
    exit 0
fi
launch=(mpirun -q -np "$ranks")
[ "$ranks" -le "$(nproc)" ] || launch+=(--oversubscribe)
[ "$(id -u)" -ne 0 ] || launch+=(--allow-run-as-root)

work=$(mktemp -d "${TMPDIR:-/tmp}/sb_bench_mpi.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
export OMP_WAIT_POLICY=passive
say "model: random llama 4096/384/6/6/1024/512; $n tokens, $policy, exact mode, 1 thread per process"
$sb init --arch llama --vocab 4096 --dim 384 --layers 6 --heads 6 --ffn 1024 --ctx 512 --seed 1 \
    --out "$work/model" >/dev/null
awk -v n="$n" 'BEGIN { srand(7); for (i = 0; i < n; i++) print int(rand() * 4096) }' >"$work/data.ids"
args=(ppl --model "$work/model" --data "$work/data.ids" --policy $policy --mode exact --threads 1 --json)

hz=$(getconf CLK_TCK)
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# timed NAME CMD...: stdout to NAME.json; NAME.cmd gets "wall_s own_cpu_s others_cpu_s"
timed() {
    local name=$1; shift
    local b0 b1 t
    b0=$(busy)
    TIMEFORMAT='%R %U %S'
    { time "$@" >"$work/$name.json" 2>"$work/$name.err"; } 2>"$work/$name.time" || { cat "$work/$name.err" >&2; exit 1; }
    b1=$(busy)
    read -r t u s <"$work/$name.time"
    awk -v t="$t" -v u="$u" -v s="$s" -v b="$((b1 - b0))" -v hz="$hz" \
        'BEGIN { o = b / hz - u - s; printf "%.3f %.3f %.3f\n", t, u + s, (o > 0 ? o : 0) }' >"$work/$name.cmd"
}
load_before=$(cut -d' ' -f1 /proc/loadavg)
quiet_pairs=0 i=0
while [ "$i" -lt "$runs" ] || { [ "$quiet_pairs" -lt "$runs" ] && [ "$i" -lt "$max_pairs" ]; }; do
    i=$((i + 1))
    # the first pair writes the per-token NLL, to compare
    o1=() o2=()
    [ "$i" -gt 1 ] || { o1=(--out "$work/one.h5"); o2=(--out "$work/ranks.h5"); }
    timed "one.$i" $sb "${args[@]}" "${o1[@]}"
    timed "ranks.$i" "${launch[@]}" $sb "${args[@]}" "${o2[@]}"
    say "pair $i ($quiet_pairs quiet before it; $runs wanted): 1 process $(python3 -c "import json; print(round(json.load(open('$work/one.$i.json'))['wall_s'], 2))") s," \
        "$ranks ranks $(python3 -c "import json; print(round(json.load(open('$work/ranks.$i.json'))['wall_s'], 2))") s" \
        "(other processes: $(cut -d' ' -f3 "$work/one.$i.cmd") and $(cut -d' ' -f3 "$work/ranks.$i.cmd") CPU s)"
    awk -v a="$(cut -d' ' -f3 "$work/one.$i.cmd")" -v b="$(cut -d' ' -f3 "$work/ranks.$i.cmd")" \
        -v w="$(cut -d' ' -f1 "$work/ranks.$i.cmd")" 'BEGIN { exit !((a > b ? a : b) < 0.05 * w) }' && quiet_pairs=$((quiet_pairs + 1))
done
runs=$i
load_after=$(cut -d' ' -f1 /proc/loadavg)
dump() { h5dump -d nll -y -w 0 -m %.9g "$1" | awk '/DATA {/ { on = 1; next } on && /}/ { exit } on { print }'; }
identical=false
cmp -s <(dump "$work/one.h5") <(dump "$work/ranks.h5") && identical=true

python3 - "$work" "$runs" "$ranks" "$n" "$policy" "$identical" "$load_before" "$load_after" "$out.tmp" <<'EOF'
import json, statistics, sys
work, runs, ranks, n, policy, identical, lb, la, out = sys.argv[1:]
runs, ranks = int(runs), int(ranks)
one = [json.load(open(f"{work}/one.{i}.json")) for i in range(1, runs + 1)]
par = [json.load(open(f"{work}/ranks.{i}.json")) for i in range(1, runs + 1)]
cmd = lambda k, i, f=0: float(open(f"{work}/{k}.{i}.cmd").read().split()[f])
m = par[0]["mpi"]
others = [max(cmd("one", i, 2), cmd("ranks", i, 2)) for i in range(1, runs + 1)]
quiet = [i for i in range(runs) if others[i] < 0.05 * cmd("ranks", i + 1)]
use = quiet or list(range(runs))
w1_all = statistics.median(r["wall_s"] for r in one)
wn_all = statistics.median(r["wall_s"] for r in par)
w1 = statistics.median(one[i]["wall_s"] for i in use)
wn = statistics.median(par[i]["wall_s"] for i in use)
share = m["halo_share"]
speedup = w1 / wn
res = {
    "what": f"one stream sharded over MPI ranks: {ranks} ranks x 1 thread against 1 process x 1 thread, "
            f"exact mode, median of {runs} alternating pairs",
    "model": "random llama vocab 4096, dim 384, 6 layers, 6 heads, ffn 1024, ctx 512 (bench/run_bench.sh)",
    "policy": policy, "tokens": int(n), "tokens_scored": one[0]["tokens_scored"], "ranks": ranks, "threads_per_rank": 1,
    "runs": runs,
    "single_wall_s": [r["wall_s"] for r in one], "ranks_wall_s": [r["wall_s"] for r in par],
    "single_command_s": [cmd("one", i) for i in range(1, runs + 1)],
    "ranks_command_s": [cmd("ranks", i) for i in range(1, runs + 1)],
    "ranks_wall_s_per_rank": [r["mpi"]["wall_s"] for r in par],
    "other_processes_cpu_s": others,
    "quiet_pairs": [i + 1 for i in quiet],
    "medians_over": "quiet pairs" if quiet else "every pair (none was quiet)",
    "single_wall_s_median": w1, "ranks_wall_s_median": wn,
    "speedup": speedup, "target_speedup": 1.7, "meets_target": speedup >= 1.7,
    "speedup_every_pair": w1_all / wn_all,
    "single_tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in one),
    "ranks_tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in par),
    "segments": m["segments"], "halos": m["halos"], "sink_tokens": m["sink_tokens"], "forwarded": m["forwarded"],
    "halo_share": share, "efficiency_predicted": 1 - share, "speedup_predicted": ranks * (1 - share),
    "efficiency_measured": speedup / ranks,
    "speedup_cost_model": m["speedup_model"],
    "nll_identical": identical == "true", "mean_nll_single": one[0]["mean_nll"], "mean_nll_ranks": par[0]["mean_nll"],
    "mpi_library": m["library"], "loadavg_before": float(lb), "loadavg_after": float(la),
}
for k in ("git_rev", "hostname", "cpu_model", "cores", "blas_config", "date_utc"):
    res[k] = one[-1].get(k)
json.dump(res, open(out, "w"), indent=1)
print(f"[bench-mpi] speedup {speedup:.3f}x ({w1:.2f} s -> {wn:.2f} s, medians over {res['medians_over']}); halo "
      f"share {share:.4f}, predicted {ranks * (1 - share):.3f}x; NLL identical: {identical}", file=sys.stderr)
EOF
mv "$out.tmp" "$out"
echo "wrote $out"
