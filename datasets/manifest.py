#!/usr/bin/env python3
"""Manifests for prepared text files (standard library only).

data/text/NAME.manifest.json sits beside data/text/NAME.txt and records where the text came
from and what it is: source packages with versions and licences, the sha256 and byte count of
the text, and (added by `sinkbench tokenize`) the token count per tokenizer.

CLI (used by tests and scripts):
  manifest.py write TEXT NAME SOURCES_JSON [EXTRA_JSON]   write TEXT's manifest
  manifest.py check TEXT                                  exit 0 if TEXT matches its manifest
  manifest.py license-debian COPYRIGHT_FILE               print what debian_license() finds
"""
import hashlib
import json
import os
import re
import sys

SCHEMA = "sinkbench-text-manifest/1"


def manifest_path(text_path):
    base = text_path[:-4] if text_path.endswith(".txt") else text_path
    return base + ".manifest.json"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_KNOWN_LICENSES = [
    (r"public domain", "public-domain"),
    (r"GNU General Public License|\bGPL\b", "GPL"),
    (r"GNU Lesser General Public License|\bLGPL\b", "LGPL"),
    (r"BSD", "BSD"),
    (r"Apache License", "Apache"),
    (r"\bMIT\b", "MIT"),
    (r"Creative Commons", "Creative Commons"),
    (r"Artistic License", "Artistic"),
]


def debian_license(copyright_path):
    """Licence names from a Debian copyright file (machine-readable 'License:' fields), or the
    first lines of a free-form one."""
    out = {"copyright_file": "/usr/share/doc/%s/copyright" % os.path.basename(os.path.dirname(copyright_path))}
    try:
        with open(copyright_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        out["license"] = "unknown (no copyright file)"
        return out
    names = []
    for m in re.finditer(r"^License:[ \t]*(\S[^\n]*)$", text, flags=re.M):
        name = m.group(1).strip()
        if name not in names:
            names.append(name)
    if names:
        out["license"] = " and ".join(names)
        return out
    # free-form file: name the licences it mentions and quote the first line that does
    found = []
    for pattern, name in _KNOWN_LICENSES:
        if re.search(pattern, text, re.I) and name not in found:
            found.append(name)
    out["license"] = " and ".join(found) if found else "unknown (see copyright file)"
    for line in text.splitlines():
        if any(re.search(p, line, re.I) for p, _ in _KNOWN_LICENSES):
            out["license_excerpt"] = " ".join(line.split())[:300]
            break
    return out


def npm_license(package_dir):
    """Licence from an unpacked npm tarball's package.json (and a LICENSE file if present)."""
    out = {}
    try:
        with open(os.path.join(package_dir, "package.json"), encoding="utf-8") as f:
            pj = json.load(f)
        lic = pj.get("license", "unknown")
        out["license"] = lic if isinstance(lic, str) else json.dumps(lic)
    except (OSError, ValueError):
        out["license"] = "unknown (no package.json)"
    lic_file = os.path.join(package_dir, "LICENSE")
    if os.path.exists(lic_file):
        with open(lic_file, encoding="utf-8", errors="replace") as f:
            first = " ".join(f.read(600).split())
        out["license_note"] = first[:300]
    return out


def sword_license(conf_path):
    try:
        with open(conf_path, encoding="utf-8", errors="replace") as f:
            m = re.search(r"^DistributionLicense=(.*)$", f.read(), flags=re.M)
        return m.group(1).strip() if m else "unknown"
    except OSError:
        return "unknown"


def write_json_atomic(path, obj):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(text_path, name, sources, extra=None):
    m = {
        "schema": SCHEMA,
        "name": name,
        "file": os.path.basename(text_path),
        "bytes": os.path.getsize(text_path),
        "sha256": sha256_file(text_path),
        "sources": sources,
    }
    m.update(extra or {})
    write_json_atomic(manifest_path(text_path), m)
    return m


def check(text_path):
    """None if text_path exists and matches its manifest, else why not."""
    mp = manifest_path(text_path)
    try:
        with open(mp, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        return "%s: %s" % (mp, e)
    if not os.path.exists(text_path):
        return "%s: missing" % text_path
    if os.path.getsize(text_path) != m.get("bytes"):
        return "%s: size differs from its manifest" % text_path
    if sha256_file(text_path) != m.get("sha256"):
        return "%s: sha256 differs from its manifest" % text_path
    return None


def main(argv):
    if len(argv) >= 4 and argv[1] == "write":
        sources = json.loads(argv[4]) if len(argv) > 4 else []
        extra = json.loads(argv[5]) if len(argv) > 5 else None
        if not isinstance(sources, list):
            sources = [sources]
        write_manifest(argv[2], argv[3], sources, extra)
        return 0
    if len(argv) == 3 and argv[1] == "check":
        why = check(argv[2])
        if why:
            print(why, file=sys.stderr)
            return 1
        return 0
    if len(argv) == 3 and argv[1] == "license-debian":
        print(json.dumps(debian_license(argv[2])))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
