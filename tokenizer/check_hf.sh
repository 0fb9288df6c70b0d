#!/usr/bin/env bash
# Developer check (not in the suite: needs node + the npm registry): encode random texts with
# the real Hugging Face tokenizers library (npm "tokenizers", its Rust core) and with ours,
# for a tokenizer we train on TEXT and for three SentencePiece-style files derived from it
# (Prepend+Replace normalizer; Metaspace first/no split; Metaspace always/split); ids and
# decoded text must match. Usage: make && tokenizer/check_hf.sh TEXT [N]
set -euo pipefail
cd "$(dirname "$0")/.."
text=$1; n=${2:-2000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm install --silent tokenizers@0.23.2 >/dev/null)
bin/sinkbench tokenizer-train --in "$text" --vocab 4096 --out "$tmp/bl" >/dev/null
F="-O2 -std=c11 -D_GNU_SOURCE -I. -fopenmp $(pkg-config --cflags libcjson)"
cat >"$tmp/enc.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tokenizer/tokenizer.h"
#include "engine/common.h"
/* argv[1] tokenizer; stdin: hex strings per line; stdout: ids space separated */
int main(int argc, char **argv) {
    sb_tokenizer *t;
    if (sb_tokenizer_load(&t, argv[1])) { fprintf(stderr, "%s\n", sb_last_error()); return 1; }
    static char line[1 << 22];
    static unsigned char s[1 << 21];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = strlen(line) / 2;
        for (size_t i = 0; i < n; i++) { unsigned v; sscanf(line + 2 * i, "%2x", &v); s[i] = (unsigned char)v; }
        int32_t *ids; size_t m;
        sb_tokenizer_encode(t, (char *)s, n, &ids, &m);
        for (size_t i = 0; i < m; i++) printf(i ? " %d" : "%d", ids[i]);
        char *d; size_t dl; sb_tokenizer_decode(t, ids, m, &d, &dl);
        putchar('|'); for (size_t i = 0; i < dl; i++) printf("%02x", (unsigned char)d[i]); free(d);
        putchar('\n');
        free(ids);
    }
    return 0;
}
C
cc $F "$tmp/enc.c" build/libsinkbench.a $(pkg-config --libs libcjson) -lm -o "$tmp/enc"
cat >"$tmp/mksp.mjs" <<'JS'
import fs from "node:fs";
const src = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const inv = {}; // byte-level char -> byte
{ const bs = []; for (let b = 33; b <= 126; b++) bs.push(b); for (let b = 161; b <= 172; b++) bs.push(b); for (let b = 174; b <= 255; b++) bs.push(b);
  let n = 0; const map = {}; for (let b = 0; b < 256; b++) { if (bs.includes(b)) map[b] = b; else map[b] = 256 + n++; }
  for (let b = 0; b < 256; b++) inv[String.fromCodePoint(map[b])] = b; }
const conv = (k) => { let s = ""; for (const c of k) { const b = inv[c]; if (b === undefined || b < 32 || b > 126) return null; s += b === 32 ? "\u2581" : String.fromCharCode(b); } return s; };
const vocab = { "<unk>": 0, "<s>": 1, "</s>": 2 };
for (let b = 0; b < 256; b++) vocab["<0x" + b.toString(16).toUpperCase().padStart(2, "0") + ">"] = 3 + b;
let id = 259;
for (let c = 33; c <= 126; c++) vocab[String.fromCharCode(c)] = id++;
vocab["\u2581"] = id++;
const merges = [];
for (const m of src.model.merges) {
  const [a, b] = m.split(" "); const ca = conv(a), cb = conv(b);
  if (ca === null || cb === null) continue;
  const cm = ca + cb; if (!(cm in vocab)) vocab[cm] = id++;
  merges.push(ca + " " + cb);
}
const added = [["<unk>", 0], ["<s>", 1], ["</s>", 2]].map(([c, i]) => ({ id: i, content: c, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
const dec = { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] };
const model = { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges };
const llama = { version: "1.0", truncation: null, padding: null, added_tokens: added,
  normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }] },
  pre_tokenizer: null, post_processor: null, decoder: dec, model };
fs.writeFileSync(process.argv[3] + "/sp_llama.json", JSON.stringify(llama, null, 2));
const mistral = { ...llama, normalizer: null, pre_tokenizer: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false } };
fs.writeFileSync(process.argv[3] + "/sp_mistral.json", JSON.stringify(mistral, null, 2));
const split = { ...llama, normalizer: null, pre_tokenizer: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true } };
fs.writeFileSync(process.argv[3] + "/sp_split.json", JSON.stringify(split, null, 2));
console.log("vocab", id, "merges", merges.length);
JS
cat >"$tmp/cmp.mjs" <<'JS'
import tk from "tokenizers";
import fs from "node:fs";
import { execFileSync } from "node:child_process";
const [tokPath, corpus, n] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const t = tk.Tokenizer.fromFile(tokPath);
const text = fs.readFileSync(corpus, "utf8");
const alpha = ["a", "Z", "é", "日", "ǅ", "1", "²", "Ⅻ", "٣", " ", " ", " ", "\n", "\n", "\t", "\r", "\u00a0", "\u3000",
  "\u0085", "\u001c", "\u2028", "'", "'", "s", "t", "r", "e", "l", "d", "m", "v", "S", "!", ".", "😀", "-", "\ufeff", "€", "_",
  "<|endoftext|>", "<sink>", "<|endoftext", "<s>", "</s>", "\u2581", "\u2581\u2581", "the", " the", "ing", "  "];
let seed = 777;
const rnd = (k) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % k; };
const texts = [];
for (let i = 0; i < n; i++) {
  if (i % 2 == 0) { const a = rnd(text.length - 3000); texts.push(text.slice(a, a + 1 + rnd(2000))); }
  else { let s = ""; for (let j = 0, m = 1 + rnd(40); j < m; j++) s += alpha[rnd(alpha.length)]; texts.push(s); }
}
texts.push(text.slice(0, 1 << 20)); for (const s of ["<s>hello", " hello", "\u2581hello", "hello <s> world", "", "   ", "<s>", "<s> x", "é日😀", "a\u2581 b", "</s></s>", "x<unk>y", "\n\nA"]) texts.push(s);
const hex = (s) => Buffer.from(s, "utf8").toString("hex");
const out = execFileSync(process.argv[5], [tokPath], { input: texts.map(hex).join("\n") + "\n", maxBuffer: 1 << 30 }).toString().split("\n");
let bad = 0;
for (let i = 0; i < texts.length; i++) {
  const e = await t.encode(texts[i], null, { addSpecialTokens: false });
  const want = Array.from(e.getIds()).join(" ");
  const [ours, dhex] = out[i].split("|"); out[i] = ours;
  const hd = hex(await t.decode(Array.from(e.getIds()), false));
  if (hd !== dhex && bad++ < 5) console.log("DECODE MISMATCH", JSON.stringify(texts[i].slice(0, 100)), hd.slice(0, 100), dhex.slice(0, 100));
  if (want !== out[i] && bad++ < 5) console.log("MISMATCH", JSON.stringify(texts[i].slice(0, 200)), "\n hf:  ", want.slice(0, 300), "\n ours:", out[i].slice(0, 300));
}
console.log(`${texts.length - bad}/${texts.length} texts encode identically`);
process.exit(bad ? 1 : 0);
JS
cd "$tmp"
node mksp.mjs bl/tokenizer.json .
for f in bl/tokenizer.json sp_llama.json sp_mistral.json sp_split.json; do
    printf '%s: ' "$f"
    node cmp.mjs "$f" "$text" "$n" ./enc | tail -1
done
