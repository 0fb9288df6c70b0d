#!/usr/bin/env python3
"""Reader for R's serialization format (XDR, versions 2 and 3), standard library only.

Enough of the format to get text out of R packages without installing R:
  - .rds files (saveRDS: gzip, bzip2, xz or uncompressed stream starting "X\\n")
  - lazy-load databases (NAME.rdx index + NAME.rdb blobs), as used by data/Rdata.*
Vectors (character, integer, double, logical, list), pairlists, symbols, attributes,
references and the compact ALTREP forms R writes for sequences and wrapped vectors.
Environments, closures and bytecode are out of scope and raise RdsError.

CLI:  rds.py DB_OR_RDS [NAME ...]
  prints the names held (no NAME), or the character vector NAME, one element per line.
"""
import bz2
import gzip
import lzma
import struct
import sys
import zlib


class RdsError(Exception):
    pass


# SEXP types and pseudo-types (R's serialize.c / Rinternals.h)
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP = 0, 1, 2, 3, 4
LANGSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP = 6, 9, 10, 13, 14, 15, 16
VECSXP, EXPRSXP, RAWSXP, S4SXP = 19, 20, 24, 25
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP = 255, 254, 253, 252
MISSINGARG_SXP, BASENAMESPACE_SXP, NAMESPACESXP, PACKAGESXP = 251, 250, 249, 248
PERSISTSXP, EMPTYENV_SXP, BASEENV_SXP, ATTRLANGSXP, ATTRLISTSXP = 247, 242, 241, 240, 239
ALTREP_SXP = 238
NA_INTEGER = -2147483648


class RObject:
    """A value with R attributes (names, class, dim, ...)."""

    def __init__(self, value, attributes=None):
        self.value = value
        self.attributes = attributes or {}

    def __repr__(self):
        return "RObject(%r, %r)" % (self.value, self.attributes)


class Symbol(str):
    pass


def _strip_attrs(x):
    return x.value if isinstance(x, RObject) else x


class _Reader:
    def __init__(self, data, persistent=None):
        self.d = data
        self.pos = 0
        self.refs = []
        self.persistent = persistent

    def take(self, n):
        if n < 0 or self.pos + n > len(self.d):
            raise RdsError("truncated serialization at byte %d (wanted %d more)" % (self.pos, n))
        b = self.d[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = struct.unpack(">II", self.take(8))
            n = (hi << 32) | lo
        if n < 0:
            raise RdsError("negative length %d" % n)
        return n

    def header(self):
        fmt = self.take(2)
        if fmt != b"X\n":
            raise RdsError("not XDR serialization (format %r)" % fmt)
        version = self.int()
        self.int()  # writer R version
        self.int()  # minimal reader version
        if version == 3:
            n = self.int()
            self.take(n)  # native encoding
        elif version != 2:
            raise RdsError("unsupported serialization version %d" % version)

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        levels = flags >> 12

        if t == NILVALUE_SXP:
            return None
        if t in (EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP,
                 BASENAMESPACE_SXP):
            return RObject(None, {"special": t})
        if t == REFSXP:
            idx = (flags >> 8) or self.int()
            if idx < 1 or idx > len(self.refs):
                raise RdsError("bad reference %d" % idx)
            return self.refs[idx - 1]
        if t == PERSISTSXP:
            names = _strip_attrs(self.item())
            obj = self.persistent(names) if self.persistent else RObject(names, {"persistent": True})
            self.refs.append(obj)
            return obj
        if t == SYMSXP:
            sym = Symbol(self.item() or "")
            self.refs.append(sym)
            return sym
        if t in (PACKAGESXP, NAMESPACESXP):
            self.int()  # a STRSXP-like payload: 0 then length
            n = self.int()
            val = RObject([self.item() for _ in range(n)], {"namespace": True})
            self.refs.append(val)
            return val
        if t == ENVSXP:
            raise RdsError("environments are not supported")
        if t in (LISTSXP, LANGSXP, CLOSXP, ATTRLANGSXP, ATTRLISTSXP):
            return self.pairlist(flags)
        if t == CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            raw = self.take(n)
            # levels bit 3 (64): latin1, bit 2: utf8, bit 6 ascii; bytes otherwise
            if levels & 4:  # LATIN1_MASK
                return raw.decode("latin-1")
            return raw.decode("utf-8", errors="replace")
        if t == ALTREP_SXP:
            return self.altrep()

        if t in (LGLSXP, INTSXP):
            n = self.length()
            vals = list(struct.unpack(">%di" % n, self.take(4 * n)))
            if t == LGLSXP:
                vals = [None if v == NA_INTEGER else bool(v) for v in vals]
            val = vals
        elif t == REALSXP:
            n = self.length()
            val = list(struct.unpack(">%dd" % n, self.take(8 * n)))
        elif t == CPLXSXP:
            n = self.length()
            parts = struct.unpack(">%dd" % (2 * n), self.take(16 * n))
            val = [complex(parts[2 * i], parts[2 * i + 1]) for i in range(n)]
        elif t == STRSXP:
            n = self.length()
            val = [self.item() for _ in range(n)]
        elif t in (VECSXP, EXPRSXP):
            n = self.length()
            val = [self.item() for _ in range(n)]
        elif t == RAWSXP:
            n = self.length()
            val = self.take(n)
        elif t == S4SXP:
            val = None
        else:
            raise RdsError("unsupported SEXP type %d at byte %d" % (t, self.pos - 4))
        if has_attr:
            attrs = self.attributes()
            return RObject(val, attrs)
        if has_tag:
            raise RdsError("unexpected tag on type %d" % t)
        return val

    def attributes(self):
        pl = self.item()
        if pl is None:
            return {}
        if not isinstance(pl, RObject) or not isinstance(pl.value, list):
            raise RdsError("attributes are not a pairlist")
        return dict(pl.attributes.get("pairs", []))

    def pairlist(self, flags):
        """Pairlists come as nested (attr, tag, car, cdr); read the cdr chain iteratively."""
        pairs = []
        attrs = {}
        while True:
            t = flags & 0xFF
            if flags & (1 << 9):
                attrs.update(self.attributes())
            tag = self.item() if flags & (1 << 10) else None
            car = self.item()
            pairs.append((str(tag) if tag is not None else None, car))
            flags = self.int()
            if flags & 0xFF == NILVALUE_SXP:
                break
            if flags & 0xFF not in (LISTSXP, LANGSXP, ATTRLANGSXP, ATTRLISTSXP) or t not in (
                    LISTSXP, LANGSXP, ATTRLANGSXP, ATTRLISTSXP):
                # an unusual cdr (e.g. a closure body): read it as one item
                self.pos -= 4
                pairs.append((None, self.item()))
                break
        obj = RObject([v for _, v in pairs], dict(attrs))
        obj.attributes["pairs"] = pairs
        return obj

    def altrep(self):
        info = _strip_attrs(self.item())  # pairlist (class symbol, package symbol, type)
        state = self.item()
        attr = self.item()
        cls = str(info[0]) if info else ""
        state_v = _strip_attrs(state)
        if cls == "compact_intseq":
            n, start, step = (int(x) for x in state_v)
            val = list(range(start, start + n * step, step)) if step else [start] * n
        elif cls == "compact_realseq":
            n, start, step = state_v
            val = [start + i * step for i in range(int(n))]
        elif cls.startswith("wrap_"):
            val = state_v[0] if isinstance(state_v, list) else state_v
            val = _strip_attrs(val)
        elif cls == "deferred_string":
            src = state_v[0] if isinstance(state_v, list) else state_v
            val = [str(x) for x in _strip_attrs(src)]
        else:
            raise RdsError("unsupported ALTREP class %r" % cls)
        if attr is not None:
            a = attr.attributes.get("pairs", []) if isinstance(attr, RObject) else []
            return RObject(val, dict(a))
        return val


def decompress_stream(data):
    """An .rds file body: gzip, bzip2, xz or plain."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


def unserialize(data, persistent=None):
    r = _Reader(data, persistent)
    r.header()
    return r.item()


def read_rds(path):
    with open(path, "rb") as f:
        return unserialize(decompress_stream(f.read()))


def _lazyload_blob(rdb, offset, length, compressed):
    blob = rdb[offset:offset + length]
    if len(blob) != length or length < 4:
        raise RdsError("lazy-load blob at %d+%d is outside the database" % (offset, length))
    out_len = struct.unpack(">I", blob[:4])[0]
    body = blob[4:]
    kind = compressed
    if compressed in (2, 3):
        kind = {ord("Z"): 1, ord("2"): 2, ord("X"): 3, ord("0"): 0}.get(body[0], -1)
        body = body[1:]
    if kind == 1 or compressed is True:
        raw = zlib.decompress(body)
    elif kind == 2:
        raw = bz2.decompress(body)
    elif kind == 3:
        raw = lzma.decompress(body)
    elif kind in (0, False):
        raw = body
    else:
        raise RdsError("unknown lazy-load compression %r" % compressed)
    if len(raw) != out_len:
        raise RdsError("lazy-load blob decompressed to %d bytes, expected %d" % (len(raw), out_len))
    return raw


class LazyLoadDB:
    """NAME.rdx (index, an .rds) + NAME.rdb (blobs): what R packages keep their data in."""

    def __init__(self, base):
        if base.endswith(".rdx") or base.endswith(".rdb"):
            base = base[:-4]
        self.base = base
        idx = read_rds(base + ".rdx")
        if not isinstance(idx, RObject) or "names" not in idx.attributes:
            raise RdsError("%s.rdx: not a lazy-load index" % base)
        top = dict(zip(idx.attributes["names"], idx.value))
        self.variables = self._named(top.get("variables"))
        self.references = self._named(top.get("references"))
        comp = _strip_attrs(top.get("compressed"))
        self.compressed = comp[0] if isinstance(comp, list) and comp else comp
        with open(base + ".rdb", "rb") as f:
            self.rdb = f.read()

    @staticmethod
    def _named(obj):
        if obj is None:
            return {}
        if not isinstance(obj, RObject):
            return {}
        return dict(zip(obj.attributes.get("names", []), obj.value))

    def names(self):
        return list(self.variables)

    def _load_key(self, key):
        off, length = (int(x) for x in _strip_attrs(key))
        raw = _lazyload_blob(self.rdb, off, length, self.compressed)
        return unserialize(raw, persistent=self._persistent)

    def _persistent(self, names):
        name = names[0] if names else None
        if name in self.references:
            return self._load_key(self.references[name])
        return RObject(names, {"persistent": True})

    def get(self, name):
        if name not in self.variables:
            raise RdsError("%s: no object named %r" % (self.base, name))
        return self._load_key(self.variables[name])


def character_vector(obj):
    """The strings of a character vector (NA as empty string)."""
    v = _strip_attrs(obj)
    if not isinstance(v, list) or not all(x is None or isinstance(x, str) for x in v):
        raise RdsError("not a character vector")
    return ["" if x is None else x for x in v]


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    path = argv[1]
    try:
        if path.endswith(".rds"):
            obj = read_rds(path)
            for line in character_vector(obj):
                sys.stdout.write(line + "\n")
            return 0
        db = LazyLoadDB(path)
        if len(argv) == 2:
            for n in db.names():
                print(n)
            return 0
        for name in argv[2:]:
            for line in character_vector(db.get(name)):
                sys.stdout.write(line + "\n")
    except (RdsError, OSError, zlib.error, EOFError, lzma.LZMAError) as e:
        sys.stderr.write("rds.py: %s: %s\n" % (path, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
