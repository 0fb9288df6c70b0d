#!/usr/bin/env bash
# Before/after of the 25.8M decode benchmark: builds REV (default: the parent of the commit
# that added one-row fp32 matmuls on OpenMP) in a scratch worktree and runs bench/decode_25m.sh
# with both binaries alternating. Writes docs/bench/decode_25m_before_after.json.
#   bench/decode_compare.sh [REV]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rev=${1:-${SB_BEFORE_REV:?give the revision to compare against}}
wt=$(mktemp -d "${TMPDIR:-/tmp}/sb_before.XXXXXX")
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"' EXIT
git worktree add -q --detach "$wt" "$rev" >/dev/null 2>&1
make -s -C "$wt" -j"$(nproc)" bin/sinkbench >/dev/null
mkdir -p docs/bench
bench/decode_25m.sh "$wt/bin/sinkbench" bin/sinkbench >docs/bench/decode_25m_before_after.json.tmp
mv docs/bench/decode_25m_before_after.json.tmp docs/bench/decode_25m_before_after.json
python3 -c '
import json; d = json.load(open("docs/bench/decode_25m_before_after.json"))
for m in d["medians"]: print("%-40s %s decode %.1f tok/s, prefill %.1f tok/s" % (m["bin"], m["git_rev"], m["decode_tokens_per_s"], m["prefill_tokens_per_s"]))'
