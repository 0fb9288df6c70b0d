# Training curves of the default models: loss (left; solid = training, dashed = held-out) and
# the sink share (right; attention of queries past position 16 on position 0, solid = the
# largest layer, dashed = mean over layers; heads averaged). A model with an attention sink
# has a share near 1; uniform attention over a long window gives well below 0.01.
# usage: gnuplot -c plots/training.gp DATA OUTBASE "TITLE" BLOCKS
# DATA: one block per model, header "step" "<model>" ..., rows: step train_loss heldout_loss
# share_mean share_max.
data = ARG1; out = ARG2; ttl = ARG3; nb = ARG4 + 0
set key top right noenhanced box opaque title "model"
set grid xtics ytics lc rgb "#dddddd"
set xlabel "optimizer step"
set style data lines
do for [t = 1:2] {
    if (t == 1) { set terminal pngcairo size 1200, 500 font "sans,11"; set output out.".png" }
    else { set terminal svg size 1200, 500 dynamic font "sans,11"; set output out.".svg" }
    set multiplot layout 1, 2 title ttl noenhanced
    set title "loss (solid: training, dashed: held-out)"
    set ylabel "cross-entropy (nats per token)"
    plot for [i = 0:nb - 1] data index i using 1:2 lw 2 lc i + 1 title columnheader(2), \
         for [i = 0:nb - 1] data index i using 1:3 lw 2 dt 2 lc i + 1 notitle
    set title "sink share (solid: max over layers, dashed: mean)"
    set ylabel "attention on position 0"
    set yrange [0:*]
    set key bottom right
    plot for [i = 0:nb - 1] data index i using 1:5 lw 2 lc i + 1 title columnheader(2), \
         for [i = 0:nb - 1] data index i using 1:4 lw 2 dt 2 lc i + 1 notitle
    set yrange [*:*]
    set key top right
    unset multiplot
    unset output
}
