# Per-token decode latency and peak memory against cache size (paper Fig. 10).
# Left: mean latency per token (solid) and p99 (dashed) for the two policies, log-log, with
# the speedup written above each cache size. Right: peak resident memory of each run.
# usage: gnuplot -c plots/latency.gp DATA OUTBASE "TITLE" NUM_LABEL DEN_LABEL
# DATA columns: cache num_mean num_p50 num_p99 num_rss den_mean den_p50 den_p99 den_rss speedup
# (num = the slower baseline, re-computation; den = StreamingLLM; "?" = missing).
data = ARG1; out = ARG2; ttl = ARG3; num = ARG4; den = ARG5
set datafile missing "?"
set key top left Left reverse noenhanced box opaque
set grid xtics ytics lc rgb "#dddddd"
set logscale x 2
set xtics nomirror
do for [t = 1:2] {
    if (t == 1) { set terminal pngcairo size 1200, 520 font "sans,11"; set output out.".png" }
    else { set terminal svg size 1200, 520 dynamic font "sans,11"; set output out.".svg" }
    set multiplot layout 1, 2 title ttl noenhanced
    set title "per-token latency (labels: speedup)"
    set xlabel "cache size (tokens, log scale)"
    set ylabel "milliseconds per token (log scale)"
    set format y "%g"
    set logscale y
    set offsets graph 0.04, graph 0.04, graph 0.12, graph 0.02
    plot data using 1:2:xtic(1) with linespoints lw 2 pt 7 lc rgb "#c0392b" title num." (mean)", \
         data using 1:4 with lines dt 2 lw 1 lc rgb "#c0392b" title num." (p99)", \
         data using 1:6 with linespoints lw 2 pt 5 lc rgb "#2471a3" title den." (mean)", \
         data using 1:8 with lines dt 2 lw 1 lc rgb "#2471a3" title den." (p99)", \
         data using 1:2:(sprintf("%.1fx", $10)) with labels offset 0, 1.1 font ",9" notitle
    set title "peak resident memory (weights included)"
    set ylabel "peak RSS (MiB)"
    set yrange [0:*]
    unset logscale y
    set format y "%g"
    set offsets graph 0.04, graph 0.04, graph 0.1, 0
    plot data using 1:5:xtic(1) with linespoints lw 2 pt 7 lc rgb "#c0392b" title num, \
         data using 1:9 with linespoints lw 2 pt 5 lc rgb "#2471a3" title den
    set yrange [*:*]
    unset multiplot
    unset output
}
