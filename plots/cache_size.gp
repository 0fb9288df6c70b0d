# Perplexity against cache size with 4 sinks (paper Table 6), one line per model, log2 x;
# the dashed line marks the training context: larger caches place keys at unseen distances.
# usage: gnuplot -c plots/cache_size.gp DATA OUTBASE "TITLE" CTX BLOCKS
# DATA: one block per model, header "cache" "<model>", rows: cache entries (4+W), perplexity.
data = ARG1; out = ARG2; ttl = ARG3; ctx = ARG4 + 0; nb = ARG5 + 0
set title ttl noenhanced
set xlabel "cache size (tokens: 4 sinks + recent, log scale)"
set ylabel "perplexity"
set logscale x 2
set xtics nomirror
set grid xtics ytics lc rgb "#dddddd"
set key outside right top noenhanced title "model"
set offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1
set arrow 1 from ctx, graph 0 to ctx, graph 1 nohead dashtype 2 lc rgb "#555555"
set label 1 "training context" at ctx, graph 0.04 offset 0.4, 0 font ",9" tc rgb "#555555"
do for [t = 1:2] {
    if (t == 1) { set terminal pngcairo size 900, 540 font "sans,11"; set output out.".png" }
    else { set terminal svg size 900, 540 dynamic font "sans,11"; set output out.".svg" }
    plot for [i = 0:nb - 1] data index i using 1:2:xtic(1) with linespoints lw 2 pt 7 ps 1 title columnheader(2)
    unset output
}
