#!/usr/bin/env bash
# Train the three default models side by side on a bigger machine with the same code
# (bin/sinkbench train) and the committed configs. Used to make the shipped models/; the
# CPU recipe is `make models`. Phases, so that a lent machine can be driven in short calls:
#   scripts/device_train.sh start [SECONDS]  calibrate, choose [optim] steps to fit SECONDS of
#                                            training (default 1200), start the runs detached
#   scripts/device_train.sh wait [SECONDS]   wait up to SECONDS for the runs; print progress
#   scripts/device_train.sh pack OUTDIR      convert to bf16 and pack models + logs + configs
# Environment: SB_BIN (default bin/sinkbench), SB_WORK (default /tmp/sbtrain),
# SB_MODELS (default "base sinktok zerosink").
set -euo pipefail
bin=${SB_BIN:-bin/sinkbench}
work=${SB_WORK:-/tmp/sbtrain}
models=${SB_MODELS:-base sinktok zerosink}
phase=${1:?usage: device_train.sh start|wait|pack ...}
nmodels=$(echo $models | wc -w)
threads=$(( ($(nproc) - 1) / nmodels ))
[ "$threads" -ge 1 ] || threads=1
# OpenBLAS picks a slow generic kernel on CPUs newer than its release; name the right one
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
case "$flags" in
    *avx512f*) export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} ;;
    *avx2*) export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} ;;
esac
mkdir -p "$work"

case "$phase" in
start)
    budget=${2:-1200}
    for m in $models; do
        rm -rf "$work/cal_$m"
        "$bin" train --config configs/train_$m.ini --out "$work/cal_$m" --threads $threads --stop-at 6 \
            >"$work/cal_$m.log" 2>&1 &
    done
    wait
    # the slowest run sets the pace: all three must see the same steps
    rate=$(for m in $models; do sed -n 's/.* \([0-9.]*\) tok\/s.*/\1/p' "$work/cal_$m.log" | tail -1; done | sort -n | head -1)
    [ -n "$rate" ] || { cat "$work"/cal_*.log; echo "calibration failed" >&2; exit 1; }
    tps=$(sed -n 's/^batch *= *//p' configs/train_base.ini)
    seq=$(sed -n 's/^seq_len *= *//p' configs/train_base.ini)
    # 8% of the time goes to evaluations and checkpoints
    steps=$(awk -v r="$rate" -v b="$budget" -v t=$((tps * seq)) 'BEGIN{s=int(r*b*0.92/t/50)*50; if(s<100)s=100; print s}')
    warm=$(( steps / 12 ))
    echo "calibration: $rate tok/s per run ($threads threads, $nmodels runs, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}) -> steps $steps, warmup $warm"
    for m in $models; do
        sed -i "s/^steps *=.*/steps = $steps/; s/^warmup *=.*/warmup = $warm/; s/^threads *=.*/threads = $threads/" configs/train_$m.ini
        cp configs/train_$m.ini "$work/"
        rm -rf "$work/sb-$m"
        setsid nohup "$bin" train --config configs/train_$m.ini --out "$work/sb-$m" >"$work/train_$m.log" 2>&1 </dev/null &
    done
    lscpu >"$work/lscpu.txt" 2>&1 || true
    echo "started: $models"
    ;;
wait)
    limit=${2:-540}
    t0=$(date +%s)
    while :; do
        running=0
        for m in $models; do pgrep -f "sb-$m" >/dev/null && running=$((running + 1)); done
        [ $running -eq 0 ] && break
        [ $(( $(date +%s) - t0 )) -ge "$limit" ] && break
        sleep 10
    done
    for m in $models; do echo "== $m"; tr '\r' '\n' <"$work/train_$m.log" | grep -v '^$' | tail -3; done
    echo "running: $running"
    ;;
pack)
    out=${2:?pack needs OUTDIR}
    mkdir -p "$work/pack"
    for m in $models; do
        d="$work/pack/sb-$m"
        rm -rf "$d"
        "$bin" convert --model "$work/sb-$m" --dtype bf16 --out "$d"
        cp "$work/sb-$m/train_log.h5" "$work/sb-$m/train.ini" "$work/train_$m.log" "$work/train_$m.ini" "$d/"
    done
    cp "$work/lscpu.txt" "$work/pack/"
    tar -C "$work/pack" -cf "$work/models.tar" .
    split -b 15M -d "$work/models.tar" "$out/models.tar.part"
    ls -la "$out"
    ;;
*) echo "unknown phase '$phase'" >&2; exit 2 ;;
esac
