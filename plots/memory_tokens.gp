# Memory against tokens processed in decode mode: the keys and values held (left) and the
# resident memory of the process (right), one line per cache policy. Dense attention keeps
# every token; StreamingLLM stops growing once its cache is full.
# usage: gnuplot -c plots/memory_tokens.gp DATA OUTBASE "TITLE" BLOCKS
# DATA: one block per policy, header "tokens" "<policy>" "cache", rows: tokens fed,
# RSS (MiB), keys+values held (MiB).
data = ARG1; out = ARG2; ttl = ARG3; nb = ARG4 + 0
set key top left Left reverse noenhanced box opaque title "cache policy"
set grid xtics ytics lc rgb "#dddddd"
set xlabel "tokens processed"
set style data lines
do for [t = 1:2] {
    if (t == 1) { set terminal pngcairo size 1200, 500 font "sans,11"; set output out.".png" }
    else { set terminal svg size 1200, 500 dynamic font "sans,11"; set output out.".svg" }
    set multiplot layout 1, 2 title ttl noenhanced
    set title "KV cache in use"
    set ylabel "keys + values held (MiB)"
    set yrange [0:*]
    plot for [i = 0:nb - 1] data index i using 1:3 lw 2 title columnheader(2)
    set title "resident memory of the process"
    set ylabel "RSS (MiB)"
    set yrange [*:*]
    plot for [i = 0:nb - 1] data index i using 1:2 lw 2 title columnheader(2)
    unset multiplot
    unset output
}
