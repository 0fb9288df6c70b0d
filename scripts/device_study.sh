#!/usr/bin/env bash
# The --full study's heavy cells on a bigger machine, with the same binary and configs as
# ./run_all.sh --full, driven in short calls (a lent machine takes commands of a few minutes;
# the runs go on, detached, between calls). The cells land in the same paths a local
# `./run_all.sh --full` uses, and their keys (command line, model and data sizes and mtimes)
# match, so copying results/cells/full back and running `./run_all.sh --full --no-deps` here
# skips them and only aggregates, plots and writes the report.
#   scripts/device_study.sh setup             unpack devbin/sinkbench, devdata/data.tgz and
#                                             devdata/models*.tar (tar keeps the mtimes) into
#                                             $SB_WORK (default /tmp/sbfull)
#   scripts/device_study.sh start [EXP...]    start, detached: the ppl experiments side by
#                                             side, then the latency sweep alone
#   scripts/device_study.sh wait SECONDS      wait, printing progress
#   scripts/device_study.sh pack OUTDIR N...  tar results/cells/full, split into 15 MiB parts,
#                                             copy parts N... to OUTDIR
# The ppl_stream run here leaves out [run recompute] (20K tokens x a 512-token forward each,
# best run where it can take hours: `bin/sinkbench study run --config configs/ppl_stream.ini
# --mode full` finishes it). SB_LAT_THREADS (default 16) sets the latency threads.
set -euo pipefail
work=${SB_WORK:-/tmp/sbfull}
phase=${1:?usage: device_study.sh setup|start|wait|pack ...}
shift
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
case "$flags" in
    *avx512f*) export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} ;;
    *avx2*) export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} ;;
esac
export OMP_WAIT_POLICY=passive
cores=$(nproc)

# study EXP JOBS THREADS [CONFIG]: one experiment's cells, logged to $work/EXP.log
study() {
    (cd "$work" && bin/sinkbench study run --config "${4:-configs/$1.ini}" --mode full --results results \
        --jobs "$2" --threads "$3" >"$1.log" 2>&1) || echo "study $1 exited $?" >>"$work/driver.log"
}

case "$phase" in
setup)
    mkdir -p "$work/bin" "$work/configs"
    cp devbin/sinkbench "$work/bin/sinkbench"
    cp configs/*.ini "$work/configs/"
    for t in devdata/*.t*; do tar -C "$work" -xf "$t"; done
    # the streaming runs only: see the header
    awk '/^\[/{keep = ($0 != "[run recompute]")} keep' configs/ppl_stream.ini >"$work/configs/ppl_stream_device.ini"
    ls -l --time-style=+%s "$work"/models/* "$work"/data/text | grep -v '^total'
    lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Socket|MHz' || true
    ;;
start)
    exps=${*:-ppl_stream sink_ablation cache_size latency}
    lat_threads=${SB_LAT_THREADS:-16}
    # threads: the 7 whole-stream cells are the long pole, so they get most of the cores
    big=$(( cores * 5 / 8 / 7 )); [ "$big" -ge 1 ] || big=1
    small=$(( (cores - 7 * big) / 2 )); [ "$small" -ge 1 ] || small=1
    echo "cores $cores: ppl_stream 7 jobs x $big threads; sink_ablation, cache_size $small jobs x 1" >"$work/driver.log"
    setsid nohup bash -c "
        set -u
        $(declare -f study)
        work=$work
        for e in $exps; do
            case \$e in
                ppl_stream) study ppl_stream 7 $big configs/ppl_stream_device.ini & ;;
                sink_ablation|cache_size) study \$e $small 1 & ;;
            esac
        done
        wait
        echo \"ppl experiments done \$(date -u +%T)\" >>$work/driver.log
        case ' $exps ' in *' latency '*) study latency 1 $lat_threads ;; esac
        echo \"all done \$(date -u +%T)\" >>$work/driver.log
    " >/dev/null 2>&1 </dev/null &
    echo "started: $exps"
    ;;
wait)
    limit=${1:-500}
    t0=$(date +%s)
    while ! grep -q "all done" "$work/driver.log" && [ $(( $(date +%s) - t0 )) -lt "$limit" ]; do sleep 10; done
    cat "$work/driver.log"
    for l in "$work"/*.log; do
        [ "$l" = "$work/driver.log" ] && continue
        echo "== $(basename "$l"): $(grep -c '^study .*: \[[0-9]*/' "$l" 2>/dev/null || true) cells finished"
        tr '\r' '\n' <"$l" | grep -v '^$' | tail -n 3
    done
    uptime
    ;;
pack)
    out=${1:?pack needs OUTDIR}
    shift
    if [ ! -f "$work/parts.done" ]; then
        (cd "$work" && tar -cf - results/cells/full *.log | split -b 15M -d -a 2 - "$work/cells.tar.")
        touch "$work/parts.done"
    fi
    ls -l "$work"/cells.tar.*
    for n in "$@"; do cp "$work/cells.tar.$n" "$out/"; done
    ;;
*) echo "device_study.sh: unknown phase '$phase'" >&2; exit 2 ;;
esac
