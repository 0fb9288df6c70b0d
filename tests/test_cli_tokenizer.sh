#!/usr/bin/env bash
# sinkbench tokenizer-train end to end: trains on a small text, writes a tokenizer.json of the
# Hugging Face shape, identical for 1 and 2 threads; every error path gives exactly one line
# "sinkbench tokenizer-train: ..." on stderr and exit status 1 (bad input) or 2 (bad usage).
set -u
cd "$(dirname "$0")/.."
sb=${SINKBENCH:-bin/sinkbench}
tmp=$(mktemp -d /tmp/sb_test_toktrain.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# ~300 KB of text: documents separated by the literal <|endoftext|>
awk 'BEGIN { srand(3); split("the of and to in a is that streaming attention sink token window cache " \
      "model perplexity first tokens evicted softmax keys values layer head position rotary", w, " ");
      for (d = 0; d < 60; d++) { for (i = 0; i < 800; i++) printf "%s%s", w[int(rand() * 28) + 1], \
      (i % 17 == 16) ? ".\n" : " "; printf "\n<|endoftext|>" } }' >"$tmp/text.txt"

$sb tokenizer-train --in "$tmp/text.txt" --vocab 350 --out "$tmp/tok1" --threads 1 >"$tmp/out" 2>"$tmp/err" \
    || fail "train exited $?: $(cat "$tmp/err")"
[ -s "$tmp/err" ] && fail "stderr not empty: $(cat "$tmp/err")"
grep -q 'vocab 350' "$tmp/out" || fail "summary lacks 'vocab 350': $(cat "$tmp/out")"
f=$tmp/tok1/tokenizer.json
[ -s "$f" ] || fail "no $f"
for pat in '"type": "BPE"' '"type": "ByteLevel"' '"content": "<\|endoftext\|>"' '"content": "<sink>"' \
    '"<\|endoftext\|>": 348' '"<sink>": 349' '"Ġ[a-z]+": [0-9]+' '"merges": \['; do
    grep -qE -- "$pat" "$f" || fail "tokenizer.json lacks $pat"
done
[ "$(grep -c '^      "[^"]* [^"]*",\?$' "$f")" -eq $((350 - 256 - 2)) ] || fail "merge count is not 92"
ls "$tmp/tok1" | grep -q tmp && fail "temporary file left behind"

$sb tokenizer-train --in "$tmp/text.txt" --vocab 350 --out "$tmp/tok2" --threads 2 >/dev/null 2>&1 \
    || fail "2-thread train failed"
cmp -s "$f" "$tmp/tok2/tokenizer.json" || fail "1 and 2 threads give different tokenizers"
$sb tokenizer-train --help | grep -q -- '--vocab' || fail "--help lacks --vocab"

# expect STATUS PATTERN -- ARGS...: exit status, one stderr line matching PATTERN, no stdout
expect() {
    local want=$1 pat=$2; shift 3
    "$sb" tokenizer-train "$@" >"$tmp/out" 2>"$tmp/err"
    local st=$?
    local what="tokenizer-train $*"
    [ "$st" -lt 128 ] || { fail "$what: killed by a signal (status $st)"; return; }
    [ "$st" -eq "$want" ] || fail "$what: status $st, want $want ($(head -c 300 "$tmp/err"))"
    [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$what: $(wc -l <"$tmp/err") stderr lines: $(head -c 500 "$tmp/err")"
    grep -q '^sinkbench tokenizer-train: ' "$tmp/err" || fail "$what: stderr not 'sinkbench tokenizer-train: ...'"
    grep -qE -- "$pat" "$tmp/err" || fail "$what: stderr lacks /$pat/: $(cat "$tmp/err")"
    [ -s "$tmp/out" ] && fail "$what: wrote to stdout: $(head -c 200 "$tmp/out")"
}
t=$tmp/text.txt
expect 2 '--in' -- --vocab 400 --out "$tmp/o"
expect 2 '--out' -- --in "$t" --vocab 400
expect 2 '--in needs a value' -- --out "$tmp/o" --in
expect 2 '--vocab.*not an integer' -- --in "$t" --out "$tmp/o" --vocab abc
expect 2 '--vocab.*out of range' -- --in "$t" --out "$tmp/o" --vocab 10
expect 2 '--vocab.*too small' -- --in "$t" --out "$tmp/o" --vocab 257
expect 2 '--vocab needs a value' -- --in "$t" --out "$tmp/o" --vocab
expect 2 '--threads' -- --in "$t" --out "$tmp/o" --threads -1
expect 2 "unknown option '--bogus'" -- --in "$t" --out "$tmp/o" --bogus
expect 2 'twice' -- --in "$t" --out "$tmp/o" --special '<a>' --special '<a>'
expect 1 "$tmp/missing.txt" -- --in "$tmp/missing.txt" --out "$tmp/o"
expect 1 "$tmp" -- --in "$tmp" --out "$tmp/o"
expect 1 "$tmp/no/such/dir" -- --in "$t" --out "$tmp/no/such/dir"
[ -e "$tmp/o" ] && [ -n "$(ls "$tmp/o")" ] && fail "a failed run left files in $tmp/o"

if [ "$fails" -eq 0 ]; then echo "test_cli_tokenizer: all passed"; else exit 1; fi
