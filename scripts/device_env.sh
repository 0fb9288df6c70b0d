#!/usr/bin/env bash
# Source this on a machine without a package registry (the lent GPU box) to run a
# bin/sinkbench built here: unpacks the runtime .debs carried in .debs/ (fetched here with
# `apt-get download`, see scripts/fetch_runtime_debs.sh) into a private prefix.
prefix=${SB_PREFIX:-/tmp/sbprefix}
if [ ! -d "$prefix/usr" ]; then
    mkdir -p "$prefix"
    for f in .debs/*.deb; do dpkg -x "$f" "$prefix"; done
fi
export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu/openblas-pthread:$prefix/usr/lib/x86_64-linux-gnu/hdf5/serial:$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
