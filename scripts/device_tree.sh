#!/usr/bin/env bash
# Shrinks what a device call sends (the lent machine takes at most 64 MiB of working tree):
#   scripts/device_tree.sh shrink    take the shipped models, results and docs out
#                                    of the index and ignore them, so they stay here
#   scripts/device_tree.sh restore   put them back (always run it right after the call)
# Nothing in the working tree changes; only .git/index and .git/info/exclude do. Between the two,
# a plain `git commit` (anyone's, in this checkout) would delete those paths: commit nothing then.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(models results docs)
mark="# device_tree.sh"
ex=.git/info/exclude
case "${1:-}" in
shrink)
    touch "$ex"
    grep -q "^$mark" "$ex" || { echo "$mark"; printf '/%s/\n' "${paths[@]}"; } >>"$ex"
    git rm -r -q --cached "${paths[@]}"
    ;;
restore)
    git reset -q -- "${paths[@]}"
    if [ -f "$ex" ]; then
        awk -v m="$mark" '$0 == m { skip = 1; next } skip && /^\// { next } { skip = 0; print }' "$ex" >"$ex.tmp"
        mv "$ex.tmp" "$ex"
    fi
    git diff --cached --quiet -- "${paths[@]}" || { echo "device_tree.sh: the index still differs from HEAD" >&2; exit 1; }
    ;;
*) echo "usage: $0 shrink|restore" >&2; exit 2 ;;
esac
