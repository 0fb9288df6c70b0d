#!/usr/bin/env bash
# Installs the Debian packages sinkbench needs to build, test and draw figures.
# As root it runs apt-get; otherwise it prints the exact command and fails. Open MPI (mpirun:
# sharded ppl and study cells over ranks, docs/MPI.md) is installed as well, but a user who is
# not root and lacks only it gets a note, not a failure: without mpicc, make builds without MPI.
set -euo pipefail
pkgs=(build-essential pkg-config libopenblas-dev libhdf5-dev hdf5-tools libcjson-dev libinih-dev
      libcmocka-dev zlib1g-dev gnuplot-nox python3)
# --with-clang: clang for the warning check; --with-fuzz: clang with its libFuzzer/sanitizer
# runtimes and the OpenMP runtime it links (-fopenmp), for make fuzz
for a in "$@"; do
    case "$a" in
        --with-clang) pkgs+=(clang) ;;
        --with-fuzz) pkgs+=(clang libclang-rt-14-dev libomp-14-dev) ;;
        *) echo "install_deps: unknown option '$a'" >&2; exit 2 ;;
    esac
done
optional=(libopenmpi-dev openmpi-bin)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() missing_optional=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${optional[@]}"; do installed "$p" || missing_optional+=("$p"); done
[ ${#missing[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    if [ ${#missing[@]} -eq 0 ]; then
        echo "sinkbench: Open MPI is not installed (optional: mpirun runs, docs/MPI.md); as root:" \
             "apt-get install -y --no-install-recommends ${missing_optional[*]}" >&2
        exit 0
    fi
    echo "sinkbench: missing packages; run as root: apt-get update && apt-get install -y --no-install-recommends" \
         "${missing[*]} ${missing_optional[*]}" >&2
    exit 1
fi
missing+=("${missing_optional[@]}")
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
echo "sinkbench: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd >/dev/null
