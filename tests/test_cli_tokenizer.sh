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

# sinkbench tokenize follows the tokenizer's BOS: the Llama-style fixture (post-processor and
# add_bos_token) puts <s> (id 1) first, the byte-level one nothing; --bos no/yes override.
if command -v python3 >/dev/null; then
    tok_ids() { # FILE.tok -> its ids, space-separated
        python3 -c '
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
w, = struct.unpack_from("<I", d, 20); n, nb = struct.unpack_from("<QQ", d, 32)
o, ids = 128, []
for _ in range(nb):
    cnt, cl = struct.unpack_from("<II", d, o); raw = zlib.decompress(d[o + 16:o + 16 + cl]); o += 16 + cl
    ids += struct.unpack("<%d%s" % (cnt, "H" if w == 2 else "I"), raw)
assert len(ids) == n
print(" ".join(map(str, ids)))' "$1"
    }
    printf 'Once upon a time, there was a <s> in the text.\nThe end.\n' >"$tmp/bos.txt"
    fx=tests/fixtures/tokenizers
    tk() { # NAME FIXTURE ARGS... -> ids of the result in $tmp/NAME.ids
        local name=$1 fix=$2; shift 2
        "$sb" tokenize --model "$fx/$fix" --in "$tmp/bos.txt" --out "$tmp/$name.tok" "$@" >"$tmp/$name.out" 2>&1 \
            || { fail "tokenize $name: $(cat "$tmp/$name.out")"; return; }
        tok_ids "$tmp/$name.tok" >"$tmp/$name.ids"
    }
    tk sp_auto sp_bpe
    tk sp_no sp_bpe --bos no
    tk sp_yes sp_bpe --bos yes
    tk bl_auto bytelevel_bpe
    tk bl_yes bytelevel_bpe --bos auto --bos yes
    read -r -a a <"$tmp/sp_auto.ids"; read -r -a b <"$tmp/sp_no.ids"
    [ "${a[0]}" = 1 ] || fail "sp_bpe: first id ${a[0]}, want BOS 1"
    [ "${b[0]}" != 1 ] || fail "sp_bpe --bos no: starts with BOS"
    [ "${#a[@]}" -eq $((${#b[@]} + 1)) ] || fail "sp_bpe: ${#a[@]} ids with BOS, ${#b[@]} without"
    [ "${a[*]:1}" = "${b[*]}" ] || fail "sp_bpe: ids after BOS differ from --bos no"
    # the literal "<s>" in the text is one more id 1 inside: only the first is added
    [ "$(tr ' ' '\n' <"$tmp/sp_auto.ids" | grep -c '^1$')" -eq 2 ] || fail "sp_bpe: want exactly two id 1 (added + literal)"
    grep -q 'BOS first' "$tmp/sp_auto.out" || fail "sp_bpe: summary does not say BOS first"
    cmp -s "$tmp/sp_auto.ids" "$tmp/sp_yes.ids" || fail "sp_bpe: --bos yes differs from auto"
    read -r -a c <"$tmp/bl_auto.ids"; read -r -a d <"$tmp/bl_yes.ids"
    [ "${c[0]}" != 0 ] || fail "bytelevel: starts with <|endoftext|> (it adds no BOS)"
    grep -q 'BOS' "$tmp/bl_auto.out" && fail "bytelevel: summary mentions a BOS"
    [ "${d[0]}" = 0 ] && [ "${d[*]:1}" = "${c[*]}" ] || fail "bytelevel --bos yes: want bos_token 0 then the same ids"
    # our own default tokenizer (sb-base) adds nothing
    "$sb" tokenize --model models/sb-base --in "$tmp/bos.txt" --out "$tmp/sb.tok" >/dev/null 2>&1 || fail "sb-base tokenize"
    "$sb" tokenize --model models/sb-base --in "$tmp/bos.txt" --out "$tmp/sb_no.tok" --bos no >/dev/null 2>&1 \
        || fail "sb-base tokenize --bos no"
    cmp -s "$tmp/sb.tok" "$tmp/sb_no.tok" || fail "sb-base: default tokenize differs from --bos no"
    # .txt input to ppl: one BOS first, and bits per byte over exactly the text's bytes
    # (a text without literal specials: SentencePiece spaces around them are not text bytes)
    "$sb" init --vocab 1000 --dim 32 --layers 1 --heads 2 --out "$tmp/m" >/dev/null 2>&1 || fail "init"
    cp "$fx/sp_bpe/tokenizer.json" "$tmp/m/"
    printf 'Once upon a time, there was a cat.\nThe end of it all.\n' >"$tmp/ppl.txt"
    for cfg in true false; do
        echo "{\"add_bos_token\": $cfg}" >"$tmp/m/tokenizer_config.json"
        "$sb" ppl --model "$tmp/m" --data "$tmp/ppl.txt" --policy dense --json >"$tmp/ppl_$cfg.json" 2>"$tmp/err" \
            || fail "ppl add_bos_token=$cfg: $(cat "$tmp/err")"
    done
    python3 -c '
import json, math, sys
def load(p):
    d = json.loads(open(p).read().strip().splitlines()[-1])
    return d["tokens"], (d["tokens"] - 1) * d["mean_nll"] / math.log(2) / d["bpb"]
(nb, bb), (nn, bn), size = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
assert nb == nn + 1, "tokens %d with BOS, %d without" % (nb, nn)
# with BOS every text byte is predicted; without, all but the first token'"'"'s
assert abs(bb - size) < 1e-3 and bn < size - 0.5, "bpb counts %.3f / %.3f bytes of %d" % (bb, bn, size)
' "$tmp/ppl_true.json" "$tmp/ppl_false.json" "$(wc -c <"$tmp/ppl.txt")" || fail "ppl: wrong token or byte count"
    # a tokenizer without any BOS token refuses --bos yes; bad modes are usage errors
    mkdir -p "$tmp/nobos" && cp "$fx/bytelevel_bpe/tokenizer.json" "$tmp/nobos/"
    for args in "--model $tmp/nobos --bos yes" "--model $fx/sp_bpe --bos maybe" "--model $fx/sp_bpe --eos"; do
        # shellcheck disable=SC2086
        "$sb" tokenize $args --in "$tmp/bos.txt" --out "$tmp/x.tok" >"$tmp/out" 2>"$tmp/err"
        st=$?
        [ "$st" -eq 2 ] || fail "tokenize $args: status $st, want 2"
        [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qE -- '^sinkbench tokenize: --(bos|eos)' "$tmp/err" \
            || fail "tokenize $args: stderr $(cat "$tmp/err")"
        [ -e "$tmp/x.tok" ] && fail "tokenize $args: wrote $tmp/x.tok"
    done
else
    echo "SKIP BOS cases of test_cli_tokenizer.sh: python3 missing"
fi

if [ "$fails" -eq 0 ]; then echo "test_cli_tokenizer: all passed"; else exit 1; fi
