#!/usr/bin/env bash
# Tests of the dataset tools that run offline in seconds: the R serialization reader on files
# written here, the text cleaners and de-duplication on small inputs, the manifest writer,
# make_datasets.sh's idempotence (stamp + checksums, no network when up to date) and
# `sinkbench tokenize` end to end. Nothing here downloads a package.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
cd "$(dirname "$0")/.."
repo=$(pwd)
if ! command -v python3 >/dev/null; then
    echo "SKIP test_datasets.sh: python3 missing (make datasets installs it)"
    exit 0
fi
# the interpreter itself, not a version-manager shim (each shim call costs a shell start)
py=$(command python3 -c 'import sys; print(sys.executable)')
python3() { "$py" "$@"; }
tmp=$(mktemp -d /tmp/sb_test_datasets.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME COMMAND...: run, report
    if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}

# ---------------------------------------------------------------- R serialization
# A writer independent of the reader: XDR format 2 and 3, character vectors with NA, names,
# an integer vector, a pairlist of attributes, gzip/bzip2/xz/plain .rds and a lazy-load DB.
cat >"$tmp/mkr.py" <<'EOF'
import bz2, gzip, lzma, struct, sys, zlib
def i(x): return struct.pack(">i", x)
def charsxp(s):
    if s is None: return i(9) + i(-1)
    b = s.encode("utf-8"); return i(9 | (8 << 12)) + i(len(b)) + b      # UTF8 level bit
def strsxp(v, attrs=None):
    flags = 16 | ((1 << 9) if attrs else 0)
    out = i(flags) + i(len(v)) + b"".join(charsxp(s) for s in v)
    return out + (attr_pairlist(attrs) if attrs else b"")
def intsxp(v): return i(13) + i(len(v)) + b"".join(i(x) for x in v)
def realsxp(v): return i(14) + i(len(v)) + b"".join(struct.pack(">d", x) for x in v)
def vecsxp(items, names=None):
    flags = 19 | ((1 << 9) if names else 0)
    out = i(flags) + i(len(items)) + b"".join(items)
    return out + (attr_pairlist({"names": strsxp(names)}) if names else b"")
def symsxp(name): return i(1) + charsxp(name)
def attr_pairlist(attrs):
    out = b""
    for k, v in attrs.items():
        out += i(2 | (1 << 10)) + symsxp(k) + v     # LISTSXP with tag
    return out + i(254)
def header(version):
    h = b"X\n" + i(version) + i(0x040201) + i(0x030500)
    return h + (i(5) + b"UTF-8" if version == 3 else b"")
kind, out = sys.argv[1], sys.argv[2]
lines = ["First line, caf\u00e9.", "", None, "Last line \u2014 done."]
if kind.startswith("rds"):
    version = 3 if kind.endswith("3") else 2
    body = header(version) + strsxp(lines, {"names": strsxp(["a", "b", "c", "d"])})
    comp = {"rds2": gzip.compress, "rds3": gzip.compress, "rdsbz": bz2.compress, "rdsxz": lzma.compress,
            "rdsplain": lambda b: b}
    open(out, "wb").write(comp.get(kind, gzip.compress)(body))
elif kind == "lazyload":
    blobs, index, rdb = {"novel": strsxp(lines), "numbers": intsxp([1, 2, 3])}, [], b""
    for name, obj in blobs.items():
        raw = header(2) + obj
        blob = struct.pack(">I", len(raw)) + zlib.compress(raw)
        index.append((name, len(rdb), len(blob)))
        rdb += blob
    variables = vecsxp([realsxp([off, ln]) for _, off, ln in index], [n for n, _, _ in index])
    top = vecsxp([variables, vecsxp([]), i(10) + i(1) + i(1)], ["variables", "references", "compressed"])
    open(out + ".rdx", "wb").write(gzip.compress(header(2) + top))
    open(out + ".rdb", "wb").write(rdb)
EOF
want=$(printf 'First line, caf\xc3\xa9.\n\n\nLast line \xe2\x80\x94 done.\n')
for kind in rds2 rds3 rdsbz rdsxz rdsplain; do
    python3 "$tmp/mkr.py" "$kind" "$tmp/$kind.rds"
    check "rds reader: $kind" test "$(python3 datasets/rds.py "$tmp/$kind.rds")" = "$want"
done
python3 "$tmp/mkr.py" lazyload "$tmp/db"
check "rds lazy-load: names" test "$(python3 datasets/rds.py "$tmp/db" | sort | tr '\n' ' ')" = "novel numbers "
check "rds lazy-load: character vector" test "$(python3 datasets/rds.py "$tmp/db" novel)" = "$want"
check "rds lazy-load: a missing name fails" bash -c "! python3 datasets/rds.py '$tmp/db' nosuch 2>/dev/null"
check "rds lazy-load: not a character vector fails" bash -c "! python3 datasets/rds.py '$tmp/db' numbers 2>/dev/null"
# every truncation of the stream fails with RdsError (a message naming the file from the CLI),
# never another exception
check "rds reader: truncated streams fail cleanly" python3 - "$tmp" <<'EOF'
import contextlib, gzip, io, sys
sys.path.insert(0, "datasets")
import rds
tmp = sys.argv[1]
raw = gzip.decompress(open(tmp + "/rds2.rds", "rb").read())
for n in range(len(raw)):
    try:
        rds.unserialize(raw[:n])
        raise SystemExit("length %d parsed" % n)
    except rds.RdsError:
        pass
    p = "%s/cut.rds" % tmp
    open(p, "wb").write(gzip.compress(raw[:n]))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = rds.main(["rds.py", p])
    assert rc == 1 and "cut.rds" in err.getvalue(), (n, rc, err.getvalue())
EOF

# ---------------------------------------------------------------- cleaners and de-duplication
check "cleaners" python3 - <<'EOF'
import sys
sys.path.insert(0, "datasets")
import extract as e
osis = ('<div sID="a" type="x-p"/> The <hi type="italic">LORD</hi> is &amp; was<note placement="foot">a note'
        '</note>. <div eID="a" type="x-p"/><title type="x-s">EXPOSITION.</title><div sID="b" type="x-p"/>'
        ' Next\tparagraph \u00b6 here. <reference osisRef="Ps.1.1">Psalm 1:1</reference>')
assert e.osis_to_text(osis, True) == "The LORD is & was.\nEXPOSITION.\nNext paragraph here. Psalm 1:1", \
    repr(e.osis_to_text(osis, True))
assert e.osis_to_text('<w lemma="x">In</w> the <l sID="1"/>beginning<l eID="1"/>.', False) == "In the beginning ."
text = "  Wrapped prose line one\n  and line two.\n\n      An indented verse\n      line\n  back to prose\n"
assert e.reflow(text) == "Wrapped prose line one and line two.\nAn indented verse\nline\nback to prose", \
    repr(e.reflow(text))
assert e.reflow("a\n b\n\nc", keep_indented=False) == "a b\nc"
assert e.normalize_lines("  x \t y \r\n\n\n z\u00a0 ") == "x y\nz"
assert e.fix_mojibake("a fine of \u00c2\u00a35") == "a fine of \u00a35"
assert e.fix_mojibake("caf\u00e9 stays") == "caf\u00e9 stays"
g = e.gcide_entry('Coagulate \\Co*ag"u*late\\, v. t. To cause {curdling}.\n   [1913 Webster]\n')
assert g == "Coagulate, v. t. To cause curdling.", repr(g)
held = "one two three four five six seven eight nine ten eleven twelve"
grams = e.ngram_set([held])
train = ("a fresh line with nothing shared at all here okay\n"
         "prefix one two three four five six seven eight nine ten suffix\n"
         "one two three four five six seven eight nine only\n"
         "kept line")
out, lines, nbytes = e.drop_overlapping_lines(train, grams)
# any shared run of 10 words is caught; a run of 9 may not be (8-grams probed every 3rd word)
assert out.split("\n")[0] == "a fresh line with nothing shared at all here okay", out
assert "prefix" not in out and "kept line" in out and lines >= 1, (out, lines)
long_line = ("Unrelated opening sentence that is fine. " * 60) + "Then one two three four five six seven eight nine ten. End here."
out, n, b = e.drop_overlapping_lines(long_line, grams)
assert "Unrelated opening" in out and "one two three" not in out and "End here." in out and n == 1, (n, out[-80:])
EOF
check "cleaners: documentation pages, FOLDOC, WordNet" python3 - <<'EOF'
import sys
sys.path.insert(0, "datasets")
import extract as e
page = ('<html><head><title>T</title><script>var x = "not this one at all, no.";</script></head><body>'
        '<div class="sphinxsidebar"><p>Navigation text that is long enough to be prose, but skipped.</p></div>'
        '<h1>Heading<a class="headerlink" href="#h">\u00b6</a></h1>'
        '<p>The <code>open()</code> function returns a file object, and it raises an error on failure.</p>'
        '<pre>for line in f:\n    print(line)  # a code block is never text</pre>'
        '<table><tr><td>A table cell that reads like a sentence is left out too.</td></tr></table>'
        '<ul><li><p>A list item with a real sentence in it is kept as its own line.</p></li></ul>'
        '<dl><dt>int foo(struct bar *b, unsigned long flags)</dt><dd>Frees &amp; releases the buffer b.</dd></dl>'
        '<p>\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u53e5\u5b50\uff0c\u4e0d\u662f\u82f1\u6587\u3002</p></body></html>')
got = e.html_prose(page)
assert got == ["The open() function returns a file object, and it raises an error on failure.",
               "A list item with a real sentence in it is kept as its own line."], got
assert not e.is_prose("x = foo(bar, baz); y = qux(1, 2, 3);")
f = e.foldoc_entry("spoof", "spoof\n\n   To {fake} the source address of a packet, so that it\n   seems to come from elsewhere.\n\n   (1997-03-31)\n")
assert f == "spoof: To fake the source address of a packet, so that it seems to come from elsewhere.", repr(f)
seen = set()
w = e.wordnet_entry("Abnormal\n    adj 1: not normal; not typical [syn: {unnatural}]\n    2: much greater than the normal;\n       \"abnormal profits\"\n", seen)
assert w == 'Abnormal (adj): not normal; not typical\nAbnormal (adj): much greater than the normal; "abnormal profits"', repr(w)
assert e.wordnet_entry("unnatural\n    adj 1: not normal; not typical [syn: {abnormal}]\n", seen) == ""
EOF

# ---------------------------------------------------------------- manifests
printf 'hello\nworld\n' >"$tmp/small.txt"
python3 datasets/manifest.py write "$tmp/small.txt" small \
    '[{"package": "demo", "registry": "debian", "version": "1.0-1", "license": "public-domain"}]' \
    '{"documents": 1}'
m=$tmp/small.manifest.json
check "manifest: sha256 of the text" grep -q "\"sha256\": \"$(sha256sum "$tmp/small.txt" | cut -d' ' -f1)\"" "$m"
check "manifest: byte count" grep -q '"bytes": 12' "$m"
check "manifest: source version" python3 -c "import json,sys; m=json.load(open(sys.argv[1])); assert m['sources'][0]['version']=='1.0-1' and m['documents']==1 and m['name']=='small'" "$m"
check "manifest: check passes" python3 datasets/manifest.py check "$tmp/small.txt"
printf 'changed\n' >>"$tmp/small.txt"
check "manifest: check notices a change" bash -c "! python3 datasets/manifest.py check '$tmp/small.txt' 2>/dev/null"
mkdir -p "$tmp/doc/pkg"
printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: public-domain\n\nFiles: debian/*\nLicense: GPL-2+\n' >"$tmp/doc/pkg/copyright"
check "manifest: debian licence fields" test "$(python3 datasets/manifest.py license-debian "$tmp/doc/pkg/copyright" | python3 -c 'import json,sys; print(json.load(sys.stdin)["license"])')" = "public-domain and GPL-2+"

# ---------------------------------------------------------------- make_datasets.sh idempotence
data=$tmp/data
mkdir -p "$data/text" "$tmp/bin"
for n in heldout-book heldout-austen train train-more; do
    printf 'text of %s\n' "$n" >"$data/text/$n.txt"
    python3 datasets/manifest.py write "$data/text/$n.txt" "$n" '[]'
done
datasets/make_datasets.sh --print-stamp >"$data/text/.stamp"
# tools that would reach the network must not run when everything is up to date
for t in apt-get npm mod2imp dpkg-deb; do
    printf '#!/bin/sh\necho "%s called" >>"%s/called"\nexit 1\n' "$t" "$tmp" >"$tmp/bin/$t"
    chmod +x "$tmp/bin/$t"
done
out=$(PATH="$tmp/bin:$PATH" SB_DATA_DIR="$data" datasets/make_datasets.sh 2>&1)
check "make_datasets: up to date is a no-op" bash -c "[[ '$out' == *'up to date'* ]] && [ ! -e '$tmp/called' ]"
check "make_datasets: --check when current" env SB_DATA_DIR="$data" datasets/make_datasets.sh --check
printf 'tampered\n' >>"$data/text/train.txt"
out=$(SB_DATA_DIR="$data" datasets/make_datasets.sh --check 2>&1 || true)
check "make_datasets: --check names a changed output" bash -c "[[ '$out' == *'train.txt does not match'* ]]"
python3 datasets/manifest.py write "$data/text/train.txt" train '[]'
echo stale >"$data/text/.stamp"
out=$(SB_DATA_DIR="$data" datasets/make_datasets.sh --check 2>&1 || true)
check "make_datasets: --check notices a stale stamp" bash -c "[[ '$out' == *'stamp'* ]]"
rm "$data/text/heldout-austen.manifest.json"
datasets/make_datasets.sh --print-stamp >"$data/text/.stamp"
out=$(SB_DATA_DIR="$data" datasets/make_datasets.sh --check 2>&1 || true)
check "make_datasets: --check notices a missing manifest" bash -c "[[ '$out' == *'heldout-austen'* ]]"

# ---------------------------------------------------------------- sinkbench tokenize
if [ -x bin/sinkbench ] && bin/sinkbench tokenize --help >/dev/null 2>&1 && bin/sinkbench tokenizer-train --help >/dev/null 2>&1; then
    python3 - "$tmp/corpus.txt" <<'EOF'
import random, sys
r = random.Random(1)
words = "the quick brown fox jumps over lazy dog and cat sat on mat while rain fell softly".split()
with open(sys.argv[1], "w") as f:
    for d in range(40):
        for l in range(30):
            f.write(" ".join(r.choice(words) for _ in range(r.randint(3, 15))).capitalize() + ".\n")
        f.write("<|endoftext|>\n")
EOF
    bin/sinkbench tokenizer-train --in "$tmp/corpus.txt" --out "$tmp/tok" --vocab 300 >/dev/null 2>&1
    python3 datasets/manifest.py write "$tmp/corpus.txt" corpus '[]'
    bin/sinkbench tokenize --model "$tmp/tok" --in "$tmp/corpus.txt" --out "$tmp/corpus.tok" --chunk 1K >"$tmp/tok.out" 2>&1
    n=$(grep -o '[0-9]* tokens from' "$tmp/tok.out" | cut -d' ' -f1)
    check "tokenize: writes a .tok" test -s "$tmp/corpus.tok"
    check "tokenize: manifest token count" python3 -c "import json,sys; m=json.load(open(sys.argv[1])); assert m['token_count']==int(sys.argv[2])>0; assert list(m['tokenizations'].values())[0]['tokens']==int(sys.argv[2])" "$tmp/corpus.manifest.json" "$n"
    # pieces of 1 KiB give the same tokens as one piece
    bin/sinkbench tokenize --model "$tmp/tok" --in "$tmp/corpus.txt" --out "$tmp/whole.tok" --chunk 64M >/dev/null 2>&1
    check "tokenize: chunking does not change the ids" cmp -s "$tmp/corpus.tok" "$tmp/whole.tok"
    printf 'edited\n' >>"$tmp/corpus.txt"
    bin/sinkbench tokenize --model "$tmp/tok" --in "$tmp/corpus.txt" --out "$tmp/c2.tok" >/dev/null 2>"$tmp/err" || true
    check "tokenize: stale manifest is not updated" grep -q 'no longer matches' "$tmp/err"
    bin/sinkbench tokenize --model "$tmp/tok" --in "$tmp/nope.txt" --out "$tmp/x.tok" >/dev/null 2>"$tmp/err" || true
    check "tokenize: missing input is named" grep -q 'nope.txt' "$tmp/err"
    check "tokenize: nothing written on failure" test ! -e "$tmp/x.tok"
    rc=0
    bin/sinkbench tokenize --in "$tmp/corpus.txt" >/dev/null 2>"$tmp/err" || rc=$?
    check "tokenize: usage error exits 2" test "$rc" = 2
    check "tokenize: usage error names the flag" grep -q -- '--model is required' "$tmp/err"
else
    echo "SKIP tokenize tests: bin/sinkbench without tokenize/tokenizer-train"
fi

echo
[ "$fails" -eq 0 ] && echo "test_datasets: all passed" || echo "test_datasets: $fails failed"
[ "$fails" -eq 0 ]
