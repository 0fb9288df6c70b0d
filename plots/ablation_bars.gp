# Perplexity for each number of initial tokens kept as sinks (paper Tables 2 and 3), one
# group of bars per model, one bar per cache policy, log scale so a window collapse (0+W)
# and small differences between 1..8 sinks both show.
# usage: gnuplot -c plots/ablation_bars.gp DATA OUTBASE "TITLE" NCOLS
# DATA: header row model "label" ...; one row per model; "?" = not applicable.
data = ARG1; out = ARG2; ttl = ARG3; nc = ARG4 + 0
set title ttl noenhanced
set ylabel "perplexity (log scale)"
set xlabel "model"
set logscale y
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1.5
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.9
set grid ytics mytics lc rgb "#dddddd"
set key outside right top noenhanced title "cache policy (K+W)"
set xtics noenhanced
# gnuplot's default cycle has 8 colours; up to 12 policies get one of their own
array colours[12] = ["#9400d3", "#009e73", "#56b4e9", "#e69f00", "#f0e442", "#0072b2", "#e51e10", "#000000", \
                     "#cc79a7", "#8c564b", "#7f7f7f", "#17becf"]
lo = 1e300; hi = 0
do for [c = 2:nc + 1] {
    undefine STATS_records
    stats data using c nooutput
    if (exists("STATS_records") && STATS_records > 0) { lo = (STATS_min < lo ? STATS_min : lo); hi = (STATS_max > hi ? STATS_max : hi) }
}
ymin = lo / 1.15; ymax = hi * 1.25
set yrange [ymin : ymax]
# decade ticks say nothing over a narrow range: use a multiplicative step that gives ~8 ticks
if (ymax / ymin < 20) { step = exp(log(ymax / ymin) / 8); set ytics ymin, step format "%.3g" }
do for [t = 1:2] {
    if (t == 1) { set terminal pngcairo size 1000, 560 font "sans,11"; set output out.".png" }
    else { set terminal svg size 1000, 560 dynamic font "sans,11"; set output out.".svg" }
    plot for [c = 2:nc + 1] data using c:xtic(1) title columnheader(c) lc rgb colours[(c - 2) % 12 + 1]
    unset output
}
