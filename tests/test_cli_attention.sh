#!/usr/bin/env bash
# sinkbench attention end to end on a small random model: the HDF5 output has maps [L, n, n]
# and sink_share [L, H] with the complete attribute, JSON on stdout, the command line the
# study's attention cells use (with --threads) works, and bad input gives one stderr line.
set -u
cd "$(dirname "$0")/.."
sb=${SINKBENCH:-bin/sinkbench}
tmp=$(mktemp -d /tmp/sb_test_attention.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
jget() { sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$2" | tr -d '"'; }

$sb init --arch llama --vocab 256 --dim 64 --layers 3 --heads 4 --kv-heads 2 --ffn 128 --ctx 64 \
    --seed 3 --scale 2 --out "$tmp/m" >/dev/null || { echo "FAIL: init"; exit 1; }
awk 'BEGIN { srand(5); for (i = 0; i < 100; i++) printf "%d ", int(rand() * 256) }' >"$tmp/d.ids"

$sb attention --help >/dev/null || fail "--help must exit 0 (the study probes it)"
$sb attention --model "$tmp/m" --data "$tmp/d.ids" --tokens 24 --json --out "$tmp/a.h5" --threads 1 \
    >"$tmp/a.json" 2>"$tmp/a.err" || fail "attention run: $(cat "$tmp/a.err")"
[ -s "$tmp/a.err" ] && fail "stderr not empty: $(cat "$tmp/a.err")"
[ "$(jget tokens "$tmp/a.json")" = "24" ] || fail "json tokens: $(cat "$tmp/a.json")"
[ "$(jget layers "$tmp/a.json")" = "3" ] || fail "json layers"
[ "$(jget heads "$tmp/a.json")" = "4" ] || fail "json heads"
h5ls "$tmp/a.h5" >"$tmp/ls" 2>&1 || fail "h5ls"
grep -q "^maps .*{3, 24, 24}" "$tmp/ls" || fail "maps shape: $(cat "$tmp/ls")"
grep -q "^sink_share .*{3, 4}" "$tmp/ls" || fail "sink_share shape: $(cat "$tmp/ls")"
h5dump -a complete "$tmp/a.h5" 2>/dev/null | grep -q "(0): 1" || fail "complete attribute"
ls "$tmp" | grep -q tmp && fail "temporary file left behind"

# default --tokens 64 but the stream is shorter: all 40 tokens
head -c 200 "$tmp/d.ids" | awk '{ for (i = 1; i <= 40 && i <= NF; i++) printf "%s ", $i }' >"$tmp/short.ids"
$sb attention --model "$tmp/m" --data "$tmp/short.ids" --json >"$tmp/s.json" 2>/dev/null || fail "short run"
[ "$(jget tokens "$tmp/s.json")" = "$(wc -w <"$tmp/short.ids" | tr -d ' ')" ] || fail "short tokens: $(cat "$tmp/s.json")"

# a model with a learned <sink> token is probed with the <sink> at position 0, as it was trained:
# the same maps as the text with the <sink> written in front and --sink-token off
$sb init --arch llama --vocab 256 --dim 64 --layers 2 --heads 4 --ffn 128 --ctx 64 --seed 4 --scale 2 \
    --sink-token 7 --out "$tmp/k" >/dev/null || fail "init with a sink token"
$sb attention --model "$tmp/k" --data "$tmp/d.ids" --tokens 24 --json --out "$tmp/k1.h5" >"$tmp/k1.json" 2>/dev/null ||
    fail "sink-token run"
[ "$(jget sink_token_prefixed "$tmp/k1.json")" = "true" ] || fail "sink not prefixed: $(cat "$tmp/k1.json")"
[ "$(jget tokens "$tmp/k1.json")" = "24" ] || fail "sink-token tokens: $(cat "$tmp/k1.json")"
{ printf '7 '; cat "$tmp/d.ids"; } >"$tmp/k.ids"
$sb attention --model "$tmp/k" --data "$tmp/k.ids" --tokens 24 --sink-token off --json --out "$tmp/k2.h5" \
    >"$tmp/k2.json" 2>/dev/null || fail "--sink-token off run"
[ "$(jget sink_token_prefixed "$tmp/k2.json")" = "false" ] || fail "--sink-token off still prefixed"
h5dump -d maps -d sink_share "$tmp/k1.h5" | tail -n +2 >"$tmp/k1.txt"
h5dump -d maps -d sink_share "$tmp/k2.h5" | tail -n +2 >"$tmp/k2.txt"
cmp -s "$tmp/k1.txt" "$tmp/k2.txt" || fail "prefixed <sink> differs from the sink written in the text"
$sb attention --model "$tmp/k" --data "$tmp/d.ids" --tokens 24 --sink-token off --json >"$tmp/k3.json" 2>/dev/null
[ "$(jget sink_share_mean "$tmp/k3.json")" != "$(jget sink_share_mean "$tmp/k1.json")" ] ||
    fail "--sink-token off probes the same tokens as on"
# a model without one ignores the option
[ "$(jget sink_token_prefixed "$tmp/a.json")" = "false" ] || fail "a model without a sink token got one"

# errors: one stderr line, usage errors exit 2, others 1, no output file
check_err() { # want_status args...
    want=$1
    shift
    $sb attention "$@" >/dev/null 2>"$tmp/e"
    st=$?
    [ "$st" = "$want" ] || fail "attention $*: status $st, want $want"
    [ "$(wc -l <"$tmp/e")" = "1" ] || fail "attention $*: stderr not one line: $(cat "$tmp/e")"
}
check_err 2 --data "$tmp/d.ids"
check_err 2 --model "$tmp/m" --data "$tmp/d.ids" --tokens 1
check_err 2 --model "$tmp/m" --data "$tmp/d.ids" --bogus 3
check_err 2 --model "$tmp/k" --data "$tmp/d.ids" --sink-token maybe
check_err 1 --model "$tmp/nope" --data "$tmp/d.ids"
check_err 1 --model "$tmp/m" --data "$tmp/missing.ids" --out "$tmp/x.h5"
echo "300 1 2" >"$tmp/bad.ids"
check_err 1 --model "$tmp/m" --data "$tmp/bad.ids" --out "$tmp/x.h5"
[ -e "$tmp/x.h5" ] && fail "output written on error"

if [ "$fails" -gt 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "ok"
