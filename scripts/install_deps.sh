#!/usr/bin/env bash
# Installs the Debian packages sinkbench needs to build, test and draw figures.
# As root it runs apt-get; otherwise it prints the exact command and fails.
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
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "sinkbench: missing packages; run as root: apt-get update && $cmd" >&2
    exit 1
fi
echo "sinkbench: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd >/dev/null
