# Per-token decode latency against cache size on one GPU (Llama-2-7B shape): sinkbench's
# StreamingLLM and re-computation, the transformers reference of both, and the paper's Fig. 10
# points (A6000). Data: docs/bench/gpu/sweep/fig10.dat (bench/gpu/summarize.py).
#   gnuplot -e "dat='docs/bench/gpu/sweep/fig10.dat'; out='docs/bench/gpu/fig10.png'; gpu='NVIDIA H200'" plots/fig10_gpu.gp
if (!exists("dat")) dat = 'docs/bench/gpu/sweep/fig10.dat'
if (!exists("out")) out = 'docs/bench/gpu/fig10.png'
if (!exists("gpu")) gpu = 'GPU'
set terminal pngcairo size 900,560 font ",11"
set output out
set title sprintf("Decode latency per token, Llama-2-7B shape (%s)", gpu)
set xlabel "cache size (tokens)"
set ylabel "ms per token"
set logscale xy
set xtics (256, 512, 1024, 2048, 4096)
set grid
set key top left
$paper << EOD
256 31 63
4096 65 1411
EOD
plot dat using 1:2 with linespoints lw 2 pt 7 title "sinkbench StreamingLLM (4+W, bf16)", \
     dat using 1:3 with linespoints lw 2 pt 5 title "sinkbench re-computation", \
     dat using 1:4 with linespoints dt 2 lw 2 pt 6 title "transformers, trimmed cache (fp16 eager)", \
     dat using 1:5 with linespoints dt 2 lw 2 pt 4 title "transformers, re-computation", \
     $paper using 1:2 with points pt 9 ps 2 title "paper Fig. 10 StreamingLLM (A6000)", \
     $paper using 1:3 with points pt 11 ps 2 title "paper Fig. 10 re-computation (A6000)"
