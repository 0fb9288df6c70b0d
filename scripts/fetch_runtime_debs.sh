#!/usr/bin/env bash
# Downloads (does not install) the runtime libraries of bin/sinkbench into .debs/, so a
# build made here can run on a machine that reaches no package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs && cd .debs
apt-get download libopenblas0-pthread libopenblas0 libhdf5-103-1 libcjson1 libinih1 libsz2 libaec0 \
    libgfortran5 libquadmath0 libgomp1 libcurl4 libssl3 libnghttp2-14 libpsl5 librtmp1 libssh2-1 \
    libldap-2.5-0 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libbrotli1 libsasl2-2 \
    libidn2-0 libunistring2 libgnutls30 libnettle8 libhogweed6 libtasn1-6 libp11-kit0 libffi8 \
    libkeyutils1 libcom-err2
