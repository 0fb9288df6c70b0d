#!/usr/bin/env bash
# What `make fuzz` needs on top of the build: scripts/install_deps.sh --with-fuzz (as root it
# runs apt-get; otherwise it prints the exact command and fails).
exec "$(dirname "$0")/../../scripts/install_deps.sh" --with-fuzz
