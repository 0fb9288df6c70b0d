# Perplexity along the held-out stream, one line per cache policy (log-log), with the
# model's training context marked: window attention and dense attention leave the pack past
# it when the model relies on attention sinks.
# usage: gnuplot -c plots/ppl_vs_tokens.gp DATA OUTBASE "TITLE" CTX BLOCKS
# DATA: one block per policy (blank-line separated), header "tokens" "<policy label>",
# rows: window centre (tokens), perplexity of the window.
data = ARG1; out = ARG2; ttl = ARG3; ctx = ARG4 + 0; nb = ARG5 + 0
set title ttl noenhanced
set xlabel "position in the stream (tokens, log scale)"
set ylabel "perplexity over the window (log scale)"
set logscale xy
set format x "%.0s%c"
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key outside right top noenhanced title "cache policy (K+W)"
set arrow 1 from ctx, graph 0 to ctx, graph 1 nohead dashtype 2 lc rgb "#555555"
set label 1 "training context" at ctx, graph 0.04 offset 0.4, 0 font ",9" tc rgb "#555555"
set style data linespoints
set pointsize 0.5
do for [t = 1:2] {
    if (t == 1) { set terminal pngcairo size 1000, 560 font "sans,11"; set output out.".png" }
    else { set terminal svg size 1000, 560 dynamic font "sans,11"; set output out.".svg" }
    plot for [i = 0:nb - 1] data index i using 1:2 lw (1.2 + 1.6 * (nb - 1 - i)) pt 7 title columnheader(2)
    unset output
}
