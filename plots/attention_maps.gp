# Attention maps averaged over heads (paper Fig. 2): one panel per layer, query position down,
# key position across, colour = attention probability on a square-root scale (so the many
# small weights stay visible next to a sink). An attention sink is a dark first column.
# usage: gnuplot -c plots/attention_maps.gp DATA OUTBASE "TITLE" LAYERS TOKENS
# DATA: one block per layer (blank-line separated), TOKENS rows of TOKENS values.
data = ARG1; out = ARG2; ttl = ARG3; L = ARG4 + 0; n = ARG5 + 0
cols = (L < 4 ? L : 4); rows = int((L + cols - 1) / cols)
set palette defined (0 "#ffffff", 0.1 "#fde0c5", 0.35 "#f59e72", 0.7 "#c0392b", 1 "#4a0d0d")
set cbrange [0:1]
set cblabel "attention (square-root colour scale)"
set cbtics ("0" 0, "0.01" 0.1, "0.05" sqrt(0.05), "0.25" 0.5, "0.5" sqrt(0.5), "1" 1)
set xrange [-0.5 : n - 0.5]
set yrange [n - 0.5 : -0.5]
set size ratio -1
set xlabel "key position"
set ylabel "query position"
set tics out nomirror font ",8"
do for [t = 1:2] {
    if (t == 1) { set terminal pngcairo size 330 * cols + 120, 320 * rows + 60 font "sans,10"; set output out.".png" }
    else { set terminal svg size 330 * cols + 120, 320 * rows + 60 dynamic font "sans,10"; set output out.".svg" }
    set multiplot layout rows, cols title ttl noenhanced
    do for [l = 0:L - 1] {
        set title sprintf("layer %d", l)
        plot data index l matrix using 1:2:(sqrt($3)) with image notitle
    }
    unset multiplot
    unset output
}
