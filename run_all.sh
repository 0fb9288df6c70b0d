#!/usr/bin/env bash
# The study: from a fresh Debian 12 machine to results/REPORT.md (and results/index.html).
# Installs the dependencies, builds, prepares the held-out text (make datasets), runs the
# experiments of configs/{ppl_stream,sink_ablation,cache_size,score_policies,latency,attention,training}.ini
# through `sinkbench study`, draws the figures (plots/*.gp) and writes the report. The path of
# the report is the last line on stdout; progress goes to stderr.
#
# Finished cells are skipped, so an interrupted run resumes where it stopped (--force redoes
# them). A cell is one command (e.g. one model under one cache policy); its result and log
# live in results/cells/<mode>/<experiment>/. Ctrl-C or SIGTERM stops the running cells (each
# saves its state), prints a "resume with: ./run_all.sh ... --resume" line and exits 130 / 143.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# OpenBLAS (pthreads) and OpenMP each keep a pool of worker threads; spinning OpenMP workers
# starve the BLAS ones on a 2-core machine (measured: 1.5x slower exact-mode evaluation).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

usage() {
    cat <<'EOF'
usage: ./run_all.sh [--smoke | --quick | --full] [options]
  (default)       quick: every experiment at reduced length, 18 min on 2 idle cores
                  (measured, dependencies and datasets in place)
  --full          whole held-out stream (3.4M tokens), 400K-token ablations and cache sweep,
                  20K-token dense and re-computation runs, latency sweeps up to cache 4096
                  (2048 for the 1.1B shape): about 10 hours on 2 cores (estimated from the
                  measured per-thread rates); measured: 14 min for every ppl cell but
                  re-computation on 64 Xeon cores, 11 min of latency on 16 (see README)
  --smoke         tiny models trained on the spot, short streams: checks the pipeline in
                  about a minute (CI; then run tests/check_smoke_outputs.sh)
  --only EXP      run one experiment (ppl_stream sink_ablation cache_size latency
                  attention training); the report still shows every finished experiment
  --jobs N        cells at a time (default: number of cores, one thread each; the latency
                  experiment always runs alone with every core)
  --threads N     threads per cell (default: cores / jobs). Timed cells (latency) keep the
                  threads in their key, so cells timed with N threads elsewhere are reused
  --device DEV    run the ppl, latency and attention cells on DEV (cpu, cuda, cuda:N; the
                  binary must be built with make CUDA=1); the device is part of a cell's key
  --force         redo finished cells
  --models "A B"  evaluate these model directories under models/ instead of the defaults
  --data FILE     held-out stream (.txt, .tok or .ids) instead of data/text/heldout-book.txt
  --results DIR   output directory (default results; results/smoke for --smoke, so a
                  smoke run never replaces real results)
  --mpi N         run each experiment's cells over N MPI ranks (mpirun -np N, Open MPI): rank 0
                  hands the cells out, largest first; each rank runs --jobs cells at a time
                  (default: cores / N each). Under Slurm, srun the study instead (docs/MPI.md)
  --no-deps       skip scripts/install_deps.sh
  --resume        continue an interrupted run (the default behaviour: finished cells are
                  kept; accepted so the printed resume command reads as what it does)
EOF
}

orig_args=("$@") # for the resume line: the option loop below shifts them away
mode=quick only="" jobs="" threads="" results="" models="" data="" deps=1 device="" mpi=""
force=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) mode=smoke ;;
        --quick) mode=quick ;;
        --full) mode=full ;;
        --only) only=${2:?--only needs an experiment}; shift ;;
        --jobs) jobs=${2:?--jobs needs a number}; shift ;;
        --threads) threads=${2:?--threads needs a number}; shift ;;
        --device) device=${2:?--device needs cpu, cuda or cuda:N}; shift ;;
        --force) force=(--force) ;;
        --models) models=${2:?--models needs names}; shift ;;
        --data) data=${2:?--data needs a file}; shift ;;
        --results) results=${2:?--results needs a directory}; shift ;;
        --mpi) mpi=${2:?--mpi needs a number of ranks}; shift ;;
        --no-deps) deps=0 ;;
        --resume) ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run_all: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

experiments=(ppl_stream sink_ablation cache_size score_policies latency attention training)
if [ -n "$only" ]; then
    case " ${experiments[*]} " in
        *" $only "*) ;;
        *) echo "run_all: --only $only: not one of ${experiments[*]}" >&2; exit 2 ;;
    esac
fi
[ -n "$results" ] || { [ "$mode" = smoke ] && results=results/smoke || results=results; }
cores=$(nproc 2>/dev/null || echo 1)
launcher=()
if [ -n "$mpi" ]; then
    case "$mpi" in *[!0-9]*|0) echo "run_all: --mpi $mpi is not a positive number" >&2; exit 2 ;; esac
    # the ranks share this machine's cores unless a hostfile spreads them (OMPI_MCA_orte_default_hostfile)
    [ -n "$jobs" ] || jobs=$((cores / mpi > 0 ? cores / mpi : 1))
    # no binding: a rank's cells are child processes, which would inherit a rank's single core
    launcher=(mpirun -np "$mpi" --bind-to none)
    [ "$mpi" -le "$cores" ] || launcher+=(--oversubscribe)
    [ "$(id -u)" -ne 0 ] || launcher+=(--allow-run-as-root)
fi
[ -n "$jobs" ] || jobs=$cores
case "$jobs" in ''|*[!0-9]*|0) echo "run_all: --jobs $jobs is not a positive number" >&2; exit 2 ;; esac
device_args=()
[ -z "${device:-}" ] || device_args=(--device "$device")
thread_args=()
if [ -n "$threads" ]; then
    case "$threads" in *[!0-9]*|0) echo "run_all: --threads $threads is not a positive number" >&2; exit 2 ;; esac
    thread_args=(--threads "$threads")
fi

# ---------------------------------------------------------------- signals
# The study runs in its own process group (setsid), so a SIGTERM sent to this script alone
# still reaches every cell: the trap forwards the signal to the group, waits for the cells to
# save their state, then prints how to resume and exits 128 + signal. A setup step (build,
# datasets, smoke models) is finished first: bash runs the trap once it returns.
caught="" study_pid=""
on_signal() {
    [ -n "$caught" ] || caught=$1
    [ -z "$study_pid" ] || kill -"$1" -- "-$study_pid" 2>/dev/null || true
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
finish_interrupted() {
    local status=130 q="" a
    [ "$caught" = TERM ] && status=143
    for a in "${orig_args[@]}"; do [ "$a" = --resume ] || q+=" $(printf '%q' "$a")"; done
    say "interrupted by SIG$caught; finished cells are kept"
    echo "resume with: ./run_all.sh${q} --resume" >&2
    exit "$status"
}
# run_study CMD...: the study in its own group; returns its status once it has really ended
run_study() {
    setsid "$@" &
    study_pid=$!
    local rc=0
    while :; do
        wait "$study_pid" && rc=0 || rc=$?
        # wait returns early (> 128) when a trapped signal arrives: the group is still saving
        kill -0 "$study_pid" 2>/dev/null || break
    done
    study_pid=""
    return "$rc"
}

t0=$SECONDS
say() { printf 'run_all [%02d:%02d] %s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) "$*" >&2; }
cmdline="./run_all.sh${orig_args[*]:+ ${orig_args[*]}}"
mkdir -p "$results/logs"

# ---------------------------------------------------------------- 1. dependencies, build, data
if [ "$deps" = 1 ]; then
    say "dependencies (scripts/install_deps.sh)"
    scripts/install_deps.sh
fi
if [ -n "$mpi" ] && ! command -v mpirun >/dev/null; then
    echo "run_all: --mpi needs mpirun (Open MPI: scripts/install_deps.sh installs it, then make rebuilds with MPI)" >&2
    exit 2
fi
say "building bin/sinkbench"
if ! make -j"$cores" bin/sinkbench > "$results/logs/build.log" 2>&1; then
    tail -n 30 "$results/logs/build.log" >&2
    say "build failed (full log: $results/logs/build.log)"
    exit 1
fi
[ -z "$caught" ] || finish_interrupted
say "held-out text (make datasets)"
make datasets >&2
[ -z "$caught" ] || finish_interrupted

# ---------------------------------------------------------------- 2. models
study_models=()
if [ "$mode" = smoke ]; then
    say "smoke models (scripts/study/smoke_models.sh)"
    kind=$(scripts/study/smoke_models.sh "$results/smoke-models")
    study_models=(--models-dir "$results/smoke-models/models" --models "smoke-base smoke-sinktok smoke-zerosink"
                  --model-kind "$kind")
elif [ -n "$models" ]; then
    study_models=(--models "$models")
else
    have=0
    for m in sb-base sb-sinktok sb-zerosink; do
        { [ -f "models/$m/config.json" ] || [ -f "models/$m/model/config.json" ]; } && have=$((have + 1))
    done
    if [ "$have" = 0 ]; then
        found=()
        for d in models/*/; do
            [ -d "$d" ] || continue
            { [ -f "$d/config.json" ] || [ -f "$d/model/config.json" ]; } && found+=("$(basename "$d")")
        done
        if [ ${#found[@]} -gt 0 ]; then
            say "the default models (models/sb-base, sb-sinktok, sb-zerosink) are missing; using ${found[*]}"
            study_models=(--models "${found[*]}")
        else
            say "WARNING: no trained model in models/ (expected sb-base, sb-sinktok, sb-zerosink; see configs/train_*.ini)."
            say "WARNING: quality experiments will be empty; './run_all.sh --smoke' checks the pipeline with tiny models."
        fi
    fi
fi
data_args=()
[ -z "$data" ] || data_args=(--data "$data")
[ -z "$caught" ] || finish_interrupted

# ---------------------------------------------------------------- 3. experiments
failed=()
for exp in "${experiments[@]}"; do
    [ -z "$only" ] || [ "$only" = "$exp" ] || continue
    [ -z "$caught" ] || finish_interrupted
    say "experiment $exp ($mode)"
    if ! run_study "${launcher[@]}" bin/sinkbench study run --config "configs/$exp.ini" --mode "$mode" --results "$results" \
            --jobs "$jobs" "${thread_args[@]}" "${device_args[@]}" "${force[@]}" "${study_models[@]}" "${data_args[@]}"; then
        [ -z "$caught" ] || finish_interrupted
        failed+=("$exp")
        say "experiment $exp had failures (see the notes in the report and the logs in $results/cells/$mode/$exp)"
    fi
done

[ -z "$caught" ] || finish_interrupted
# ---------------------------------------------------------------- 4. figures and report
say "figures (plots/plot_all.sh)"
plots/plot_all.sh "$results" || { failed+=(figures); say "some figures failed"; }
say "report"
# the report's "this invocation took" line is only worth giving for a run of every experiment
wall=(--wall-s $((SECONDS - t0)))
[ -z "$only" ] || wall=()
report=$(bin/sinkbench study report --results "$results" --experiments "${experiments[*]}" \
         --command "$cmdline" "${wall[@]}")
say "done in $(((SECONDS - t0) / 60)) min $(((SECONDS - t0) % 60)) s${failed:+; failures: ${failed[*]}}"
echo "$report"
[ ${#failed[@]} -eq 0 ]
