#!/usr/bin/env bash
# llama2.c checkpoints: `generate` on stories260K reproduces llama2.c's greedy output byte
# for byte, and bad .bin files (missing, truncated, absurd header) give one stderr line
# "sinkbench generate: ..." naming the file, with exit status 1.
set -u
cd "$(dirname "$0")/.."
sb=${SINKBENCH:-bin/sinkbench}
fx=../shared/fixtures/stories260K
tmp=$(mktemp -d /tmp/sb_test_l2c.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# A native model directory with its tokenizer.json: the prompt is echoed, greedy is repeatable.
for i in $(seq 100); do echo "the cat sat on the mat and the dog ran"; done >"$tmp/t.txt"
"$sb" tokenizer-train --in "$tmp/t.txt" --out "$tmp/m" --vocab 300 >/dev/null 2>&1 || fail "tokenizer-train"
"$sb" init --vocab 300 --dim 32 --layers 1 --heads 2 --out "$tmp/m" >/dev/null 2>&1 || fail "init"
for i in 1 2; do
    "$sb" generate --model "$tmp/m" --prompt "the cat" --max-tokens 12 --temperature 0 >"$tmp/g$i" 2>"$tmp/ge" \
        || fail "native generate: $(cat "$tmp/ge")"
done
[ "$(head -c 7 "$tmp/g1")" = "the cat" ] || fail "native generate does not echo the prompt: $(head -c 100 "$tmp/g1")"
cmp -s "$tmp/g1" "$tmp/g2" || fail "native greedy generation is not repeatable"

if [ ! -f "$fx/stories260K.bin" ] || [ ! -f "$fx/tok512.bin" ]; then
    echo "SKIP test_llama2c.sh (llama2.c part): $fx is absent"
    [ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
    exit 0
fi

"$sb" generate --model "$fx/stories260K.bin" --tokenizer "$fx/tok512.bin" --prompt "Once upon a time" \
    --max-tokens 64 --temperature 0 >"$tmp/out" 2>"$tmp/err" || fail "greedy run: status $? ($(cat "$tmp/err"))"
cmp -s "$tmp/out" "$fx/greedy_64_once_upon_a_time.txt" \
    || fail "greedy output differs from llama2.c: $(head -c 300 "$tmp/out")"
[ -s "$tmp/err" ] && fail "greedy run wrote to stderr: $(head -c 200 "$tmp/err")"

# A window policy gives the same text while the window holds every position.
"$sb" generate --model "$fx/stories260K.bin" --tokenizer "$fx/tok512.bin" --prompt "Once upon a time" \
    --max-tokens 64 --temperature 0 --policy sinks:4:100 >"$tmp/out2" 2>/dev/null || fail "sinks run failed"
cmp -s "$tmp/out2" "$fx/greedy_64_once_upon_a_time.txt" || fail "sinks:4:100 differs from dense"

# Sampling is deterministic by seed.
for i in 1 2; do
    "$sb" generate --model "$fx/stories260K.bin" --tokenizer "$fx/tok512.bin" --prompt "Lily" \
        --max-tokens 40 --temperature 0.8 --top-p 0.9 --seed 7 >"$tmp/s$i" 2>/dev/null || fail "sampling run $i failed"
done
cmp -s "$tmp/s1" "$tmp/s2" || fail "same seed, different samples"
[ "$(head -c 4 "$tmp/s1")" = "Lily" ] || fail "sampled output does not start with the prompt: $(head -c 100 "$tmp/s1")"

# expect STATUS PATTERN -- ARGS...: exit status, one stderr line matching PATTERN, no stdout
expect() {
    local want=$1 pat=$2; shift 3
    "$sb" generate "$@" >"$tmp/o" 2>"$tmp/e"
    local st=$?
    local what="generate $*"
    [ "$st" -lt 128 ] || { fail "$what: killed by a signal (status $st)"; return; }
    [ "$st" -eq "$want" ] || fail "$what: status $st, want $want ($(head -c 300 "$tmp/e"))"
    [ "$(wc -l <"$tmp/e")" -eq 1 ] || fail "$what: $(wc -l <"$tmp/e") stderr lines: $(head -c 500 "$tmp/e")"
    grep -q '^sinkbench generate: ' "$tmp/e" || fail "$what: stderr not 'sinkbench generate: ...': $(cat "$tmp/e")"
    grep -qE -- "$pat" "$tmp/e" || fail "$what: stderr lacks /$pat/: $(cat "$tmp/e")"
    [ -s "$tmp/o" ] && fail "$what: wrote to stdout: $(head -c 200 "$tmp/o")"
}
tok=(--tokenizer "$fx/tok512.bin" --prompt hi --max-tokens 8 --temperature 0)

expect 1 "$tmp/missing.bin" -- --model "$tmp/missing.bin" "${tok[@]}"
head -c 100000 "$fx/stories260K.bin" >"$tmp/trunc.bin"
expect 1 "$tmp/trunc.bin.*truncated" -- --model "$tmp/trunc.bin" "${tok[@]}"
head -c 20 "$fx/stories260K.bin" >"$tmp/short.bin"
expect 1 "$tmp/short.bin.*header" -- --model "$tmp/short.bin" "${tok[@]}"
cat "$fx/stories260K.bin" "$fx/tok512.bin" >"$tmp/long.bin"
expect 1 "$tmp/long.bin" -- --model "$tmp/long.bin" "${tok[@]}"
# dim 2^30: the implied size overflows size_t
{ printf '\x00\x00\x00\x40\xac\x00\x00\x00\x05\x00\x00\x00\x08\x00\x00\x00\x04\x00\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00'
  tail -c +29 "$fx/stories260K.bin"; } >"$tmp/absurd.bin"
expect 1 "$tmp/absurd.bin" -- --model "$tmp/absurd.bin" "${tok[@]}"
# dim 4096, 64 layers: no overflow, but far more than the file holds
{ printf '\x00\x10\x00\x00\x00\x2c\x00\x00\x40\x00\x00\x00\x20\x00\x00\x00\x20\x00\x00\x00\x00\x7d\x00\x00\x00\x10\x00\x00'
  tail -c +29 "$fx/stories260K.bin"; } >"$tmp/big.bin"
expect 1 "$tmp/big.bin.*truncated" -- --model "$tmp/big.bin" "${tok[@]}"
# negative heads, and n_heads not a multiple of n_kv_heads
{ printf '\x40\x00\x00\x00\xac\x00\x00\x00\x05\x00\x00\x00\xf8\xff\xff\xff\x04\x00\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00'
  tail -c +29 "$fx/stories260K.bin"; } >"$tmp/neg.bin"
expect 1 "$tmp/neg.bin.*bad llama2.c header" -- --model "$tmp/neg.bin" "${tok[@]}"
{ printf '\x40\x00\x00\x00\xac\x00\x00\x00\x05\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00'
  tail -c +29 "$fx/stories260K.bin"; } >"$tmp/gqa.bin"
expect 1 "$tmp/gqa.bin.*bad llama2.c header" -- --model "$tmp/gqa.bin" "${tok[@]}"
# tokenizer: truncated, and missing
head -c 3000 "$fx/tok512.bin" >"$tmp/tok.bin"
expect 1 "$tmp/tok.bin.*truncated" -- --model "$fx/stories260K.bin" --tokenizer "$tmp/tok.bin" --prompt hi --max-tokens 8
expect 1 "$tmp/notok.bin" -- --model "$fx/stories260K.bin" --tokenizer "$tmp/notok.bin" --prompt hi --max-tokens 8
# usage errors
expect 2 "max-tokens" -- --model "$fx/stories260K.bin" --tokenizer "$fx/tok512.bin" --prompt hi
expect 2 "policy|spec" -- --model "$fx/stories260K.bin" "${tok[@]}" --policy bogus:1
expect 2 "temperature" -- --model "$fx/stories260K.bin" "${tok[@]}" --temperature -1

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
