#!/usr/bin/env bash
# Every error path of sinkbench ppl gives exactly one line on stderr, "sinkbench ppl: ...",
# and exit status 1 (bad input) or 2 (bad usage), never a signal.
set -u
cd "$(dirname "$0")/.."
sb=${SINKBENCH:-bin/sinkbench}
tmp=$(mktemp -d /tmp/sb_test_err.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect STATUS PATTERN -- ARGS...: exit status, one stderr line matching PATTERN, no stdout
expect() {
    local want=$1 pat=$2; shift 3
    "$sb" ppl "$@" >"$tmp/out" 2>"$tmp/err"
    local st=$?
    local what="ppl $*"
    [ "$st" -lt 128 ] || { fail "$what: killed by a signal (status $st)"; return; }
    [ "$st" -eq "$want" ] || fail "$what: status $st, want $want ($(head -c 300 "$tmp/err"))"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$what: $(wc -l <"$tmp/err") stderr lines: $(head -c 500 "$tmp/err")"
    grep -q '^sinkbench ppl: ' "$tmp/err" || fail "$what: stderr not 'sinkbench ppl: ...': $(cat "$tmp/err")"
    grep -qE -- "$pat" "$tmp/err" || fail "$what: stderr lacks /$pat/: $(cat "$tmp/err")"
    [ -s "$tmp/out" ] && fail "$what: wrote to stdout: $(head -c 200 "$tmp/out")"
}

$sb init --arch llama --vocab 64 --dim 32 --layers 1 --heads 2 --ffn 64 --ctx 32 --out "$tmp/m" >/dev/null \
    || { echo "FAIL: init"; exit 1; }
awk 'BEGIN { srand(5); for (i = 0; i < 100; i++) print int(rand() * 64) }' >"$tmp/d.ids"
m=$tmp/m d=$tmp/d.ids
$sb ppl --model "$m" --data "$d" --json >/dev/null 2>&1 || fail "the good run fails"

clone() { rm -rf "$tmp/$1"; cp -r "$m" "$tmp/$1"; }
st_size=$(stat -c %s "$m/model.safetensors")

# usage errors: 2
expect 2 'model' -- --data "$d"
expect 2 'data' -- --model "$m"
expect 2 'bogus' -- --model "$m" --data "$d" --bogus 1
expect 2 'mode' -- --model "$m" --data "$d" --mode fast
expect 2 'tokens' -- --model "$m" --data "$d" --tokens 1
expect 2 'tokens' -- --model "$m" --data "$d" --tokens abc
expect 2 'threads' -- --model "$m" --data "$d" --threads 0
expect 2 'max-memory' -- --model "$m" --data "$d" --max-memory lots
expect 2 '--policy.*sinks:8:0' -- --model "$m" --data "$d" --policy sinks:8:0
expect 2 '--policy.*sinks:-1:5' -- --model "$m" --data "$d" --policy sinks:-1:5
expect 2 '--policy.*foo' -- --model "$m" --data "$d" --policy foo
expect 2 '--policy' -- --model "$m" --data "$d" --policy sinks:4
expect 2 '--policy' -- --model "$m" --data "$d" --policy ""
expect 2 "device 'tpu'" -- --model "$m" --data "$d" --device tpu
expect 2 'device' -- --model "$m" --data "$d" --device cuda:x
expect 2 'compute' -- --model "$m" --data "$d" --compute f8
expect 2 'cpu backend computes in f32' -- --model "$m" --data "$d" --compute bf16
# a binary without CUDA says how to get one; one with CUDA but no GPU says there is none
if "$sb" ppl --model "$m" --data "$d" --device cuda >/dev/null 2>"$tmp/cuda.err"; then
    echo "SKIP: --device cuda ran (a GPU is present)"
else
    grep -qE 'built without CUDA|no CUDA GPU' "$tmp/cuda.err" || fail "--device cuda: $(cat "$tmp/cuda.err")"
    [ "$(wc -l <"$tmp/cuda.err")" -eq 1 ] || fail "--device cuda: more than one line: $(cat "$tmp/cuda.err")"
fi

# bad input: 1
expect 1 "$tmp/nomodel" -- --model "$tmp/nomodel" --data "$d"
clone trunc; truncate -s $((st_size / 2)) "$tmp/trunc/model.safetensors"
expect 1 'model.safetensors' -- --model "$tmp/trunc" --data "$d"
clone empty; : >"$tmp/empty/model.safetensors"
expect 1 'model.safetensors' -- --model "$tmp/empty" --data "$d"
clone hdr; printf '\xff\xff\xff\x00\x00\x00\x00\x00' | dd of="$tmp/hdr/model.safetensors" conv=notrunc status=none
expect 1 'model.safetensors' -- --model "$tmp/hdr" --data "$d"
clone hdr2; printf '\x00\x00\x00\x00\x00\x00\x00\x80' | dd of="$tmp/hdr2/model.safetensors" conv=notrunc status=none
expect 1 'model.safetensors' -- --model "$tmp/hdr2" --data "$d"
clone shape; sed -i 's/"intermediate_size":[[:space:]]*64/"intermediate_size": 96/' "$tmp/shape/config.json"
grep -q '"intermediate_size": 96' "$tmp/shape/config.json" || fail "could not edit config.json for the shape test"
expect 1 'model.safetensors|shape' -- --model "$tmp/shape" --data "$d"
clone nocfg; rm "$tmp/nocfg/config.json"
expect 1 'config.json' -- --model "$tmp/nocfg" --data "$d"
clone badcfg; echo '{"model_type": "llama", "hidden_size": ' >"$tmp/badcfg/config.json"
expect 1 'config.json' -- --model "$tmp/badcfg" --data "$d"

expect 1 "$tmp/missing.ids" -- --model "$m" --data "$tmp/missing.ids"
printf '1 2 64 3\n' >"$tmp/big.ids"
expect 1 'big.ids.*64' -- --model "$m" --data "$tmp/big.ids"
printf '1 2 x3\n' >"$tmp/junk.ids"
expect 1 'junk.ids' -- --model "$m" --data "$tmp/junk.ids"
printf '7\n' >"$tmp/one.ids"
expect 1 'one.ids' -- --model "$m" --data "$tmp/one.ids"
: >"$tmp/none.ids"
expect 1 'none.ids' -- --model "$m" --data "$tmp/none.ids"
echo "some text" >"$tmp/t.txt"
expect 1 'tokenizer' -- --model "$m" --data "$tmp/t.txt"

# a model and cache over 1 MiB: refused before anything is loaded
$sb init --arch llama --vocab 1024 --dim 128 --layers 2 --heads 4 --ffn 256 --ctx 64 --out "$tmp/big" >/dev/null \
    || fail "init big"
expect 1 'needs [0-9]+ bytes.*--max-memory' -- --model "$tmp/big" --data "$d" --policy dense --max-memory 1M
expect 1 'needs [0-9]+ bytes' -- --model "$m" --data "$d" --policy dense --max-memory 10K
expect 1 '/nonexistent/x.h5' -- --model "$m" --data "$d" --out /nonexistent/x.h5
expect 1 '/dev/full' -- --model "$m" --data "$d" --out /dev/full
expect 1 "$tmp" -- --model "$m" --data "$d" --out "$tmp"
for f in /dev/full.tmp.[0-9]*; do [ -e "$f" ] && { fail "a temp file was left: $f"; rm -f "$f"; }; done

# --json to a full stdout is an error too, not a silent loss
if [ -w /dev/full ]; then
    $sb ppl --model "$m" --data "$d" --json >/dev/full 2>"$tmp/err"; st=$?
    [ "$st" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "--json >/dev/full: status $st, $(cat "$tmp/err")"
fi

# a closed pipe on stdout: an error, not SIGPIPE
( $sb ppl --model "$m" --data "$d" --json 2>"$tmp/err"; echo $? >"$tmp/st" ) | true
st=$(cat "$tmp/st")
[ "$st" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "--json | (closed): status $st, $(cat "$tmp/err")"

ls "$tmp" | grep -q '\.tmp\.' && fail "temp files left: $(ls "$tmp")"
[ "$fails" -eq 0 ] && echo "ok" || { echo "$fails failure(s)"; exit 1; }
