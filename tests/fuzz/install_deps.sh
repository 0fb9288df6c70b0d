#!/usr/bin/env bash
# Installs what `make fuzz` needs on top of scripts/install_deps.sh: clang with its
# libFuzzer/sanitizer runtimes and the OpenMP runtime clang links (-fopenmp).
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail
pkgs=(clang libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "sinkbench fuzz: missing packages; run as root: apt-get update && $cmd" >&2
    exit 1
fi
echo "sinkbench fuzz: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd >/dev/null
