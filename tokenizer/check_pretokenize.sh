#!/usr/bin/env bash
# Developer check (not part of the test suite: needs node): compare sb_pretokenize_next with
# a real backtracking regex engine (V8) running the GPT-2 pattern on random strings.
# \s is spelled out as Oniguruma's Unicode set (V8's own \s differs at U+0085 and U+FEFF).
# Usage: make && tokenizer/check_pretokenize.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/split.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tokenizer/tokenizer.h"
/* stdin: one hex string per line; stdout: its pieces as hex, comma separated */
int main(void) {
    static char line[1 << 16];
    static unsigned char s[1 << 15];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = strlen(line) / 2;
        for (size_t i = 0; i < n; i++) { unsigned v; sscanf(line + 2 * i, "%2x", &v); s[i] = (unsigned char)v; }
        for (size_t p = 0; p < n;) {
            size_t e = sb_pretokenize_next(s, n, p);
            if (p) putchar(',');
            for (size_t i = p; i < e; i++) printf("%02x", s[i]);
            p = e;
        }
        putchar('\n');
    }
    return 0;
}
C
cc -O2 -I. "$tmp/split.c" build/libsinkbench.a -o "$tmp/split"
cat >"$tmp/check.mjs" <<'JS'
import { execFileSync } from "node:child_process";
const S = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const re = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${S}\\p{L}\\p{N}]+|[${S}]+(?![^${S}])|[${S}]+`, "gu");
const alpha = ["a", "Z", "é", "日", "ǅ", "1", "²", "Ⅻ", "٣", " ", " ", " ", "\n", "\n", "\t", "\r", "\u00a0", "\u3000",
  "\u0085", "\u001c", "\u2028", "'", "'", "s", "t", "r", "e", "l", "d", "m", "v", "S", "!", ".", "😀", "-", "\ufeff", "€", "_"];
let seed = 12345;
const rnd = (k) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % k; };
const n = Number(process.argv[2]);
const texts = [];
for (let i = 0; i < n; i++) {
  let s = "";
  for (let j = 0, m = 1 + rnd(24); j < m; j++) s += alpha[rnd(alpha.length)];
  texts.push(s);
}
const hex = (s) => Buffer.from(s, "utf8").toString("hex");
const out = execFileSync(process.argv[3], { input: texts.map(hex).join("\n") + "\n", maxBuffer: 1 << 28 }).toString().split("\n");
let bad = 0;
texts.forEach((s, i) => {
  const want = (s.match(re) || []).map(hex).join(",");
  if (want !== out[i] && bad++ < 10) console.log("MISMATCH", JSON.stringify(s), "regex:", want, "ours:", out[i]);
});
console.log(`${n - bad}/${n} strings split identically`);
process.exit(bad ? 1 : 0);
JS
node "$tmp/check.mjs" "$n" "$tmp/split"
