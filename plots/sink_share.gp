# Share of attention on the first token per layer (rows) and head (columns): the sink share
# of paper Fig. 2 in one picture. Values are printed in the cells.
# usage: gnuplot -c plots/sink_share.gp DATA OUTBASE "TITLE" LAYERS HEADS
# DATA: LAYERS rows of HEADS values.
data = ARG1; out = ARG2; ttl = ARG3; L = ARG4 + 0; H = ARG5 + 0
set title ttl noenhanced
set palette defined (0 "#ffffff", 0.1 "#fde0c5", 0.35 "#f59e72", 0.7 "#c0392b", 1 "#4a0d0d")
set cbrange [0:1]
set cblabel "attention on the first token"
set xrange [-0.5 : H - 0.5]
set yrange [L - 0.5 : -0.5]
set xlabel "head"
set ylabel "layer"
set xtics 1 out nomirror
set ytics 1 out nomirror
do for [t = 1:2] {
    if (t == 1) { set terminal pngcairo size (H < 6 ? 520 : 160 + 60 * H), 160 + 45 * L font "sans,10"; set output out.".png" }
    else { set terminal svg size (H < 6 ? 520 : 160 + 60 * H), 160 + 45 * L dynamic font "sans,10"; set output out.".svg" }
    plot data matrix with image notitle, \
         data matrix using 1:2:(sprintf("%.2f", $3)):($3 > 0.6 ? 0xffffff : 0) with labels tc rgb variable font ",8" notitle
    unset output
}
