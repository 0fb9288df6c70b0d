#!/usr/bin/env bash
# Registers, shared memory and spills of every kernel in engine/cuda/*.cu and train/cuda/*.cu
# (ptxas -v, sm_90),
# one line per kernel; exits 1 if any kernel spills. Needs nvcc, not a GPU.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || nvcc=nvcc
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
spills=0
for f in engine/cuda/*.cu train/cuda/*.cu; do
    "$nvcc" -O3 -arch=sm_90 -std=c++17 -I. -Xptxas -v -c "$f" -o "$tmp/x.o" 2>"$tmp/log" || { cat "$tmp/log"; exit 2; }
    awk -v file="$(basename "$f")" '
        /Compiling entry function/ { match($0, /_Z[A-Za-z0-9_]+/); name = substr($0, RSTART, RLENGTH) }
        /spill stores/ { st = $0; sub(/.*frame, /, "", st); split(st, a, " "); sst = a[1]; sld = a[5] }
        /Used [0-9]+ registers/ {
            r = $0; sub(/.*Used /, "", r); split(r, b, " "); smem = 0
            if (match($0, /[0-9]+ bytes smem/)) { smem = substr($0, RSTART, RLENGTH); sub(/ bytes smem/, "", smem) }
            n = name
            printf "%-18s regs=%-3s static_smem=%-5s spill_st=%-4s spill_ld=%-4s %s\n", file, b[1], smem, sst, sld, n
        }' "$tmp/log" | c++filt | sed -E 's/\(anonymous namespace\):://g; s/\(BandParams\)//' | tee -a "$tmp/all"
done
if grep -qvE "spill_st=0 +spill_ld=0 " "$tmp/all"; then
    echo "FAIL: some kernels spill"
    exit 1
fi
echo "no spills ($(wc -l < "$tmp/all") kernels)"
