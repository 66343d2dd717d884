"""Held-out routing items from real advisory titles and security-fix entries, all labelled ``security``.

The label comes only from upstream structure:

* Django: release-note section headings of the form "CVE-YYYY-NNNN: <title>"
  (docs/releases/*.txt) -- Django files every security fix under such a heading.
* Pillow: sub-headings (and preamble bullets; paragraphs when there are no
  sub-headings) inside the "Security" section of docs/releasenotes/*.rst.
* Tornado: bullets inside "Security fix(es)" / "Security improvements" sections of
  docs/releases/*.rst, plus any bullet naming a CVE/GHSA id (as in the other splits).
* requests / urllib3: bullets in "Security" sections of HISTORY.md / CHANGES.rst,
  plus any bullet naming a CVE/GHSA id (as in the other splits).
* lxml: CHANGES.txt bullets naming a CVE id (as in the other splits).
* node-forge (npm): top-level bullets in "### Security" sections of CHANGELOG.md,
  plus any top-level bullet naming a CVE/GHSA id (as in the other splits).
* Debian bookworm changelogs (changelog.Debian.gz): every bullet / sub-bullet
  that names a CVE id (as in the other splits).  A leading patch-file prefix such as
  "debian/patches/CVE-2023-1234.patch:" or "d/p/...:" is removed.

The wording is never looked at for labelling or selection; when a package yields
more than CAP items the selection is purely positional (evenly spaced over the
list in file order -- for Django, in CVE-id order).  Allowed filters only:
fewer than 3 words, exact duplicates, pure markup; entries are cut to their first
sentence / 240 chars.  A leading "CVE-XXXX-NNNN: " id is kept.
"""

from __future__ import annotations

import gzip
import pathlib
import re

from routing_domain_sources import SECURITY_ID, spread
from routing_domain_sources._fetch import fetch

CAP = 30  # per package: advisory sources are few, so more from each than the changelogs' 15
LABEL = "security"

PYPI = [
    ("Django", "5.2.19"),
    ("Pillow", "12.3.0"),
    ("tornado", "6.5.2"),
    ("requests", "2.32.5"),
    ("urllib3", "2.6.3"),
    ("lxml", "6.0.2"),
]
DEBIAN = [
    ("curl", "7.88.1-10+deb12u15"),
    ("libxml2", "2.9.14+dfsg-1.3~deb12u6"),
    ("sudo", "1.9.13p3-1+deb12u4"),
    ("libtiff6", "4.5.0-6+deb12u4"),
    ("libexpat1", "2.5.0-1+deb12u5"),
    ("ghostscript", "10.0.0~dfsg-11+deb12u9"),
    ("imagemagick-6.q16", "8:6.9.11.60+dfsg-1.6+deb12u15"),
    ("openssl", "3.0.22-1~deb12u2"),
    ("vim", "2:9.0.1378-2+deb12u2"),
]
NPM = [
    ("node-forge", "1.3.1"),
]


# ---------------------------------------------------------------- text helpers
def _role(m: re.Match) -> str:
    role, body = m.group(1), m.group(2)
    if role == "cve":
        return "CVE-" + body
    if role == "ghsa":
        return "GHSA-" + body
    body = re.sub(r"\s*<[^>]*>$", "", body)  # :doc:`text <target>`
    if body.startswith("~"):
        body = body[1:].split(".")[-1]
    return body


def clean(text: str) -> str:
    s = text
    s = re.sub(r":([a-z]+(?::[a-z]+)?):`([^`]*)`", _role, s)  # RST roles
    s = re.sub(r"`([^`<]*?)\s*<[^>]*>`__?", r"\1", s)  # RST links
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)  # Markdown links
    s = re.sub(r"(?<=\s)\(\s*\)|(?<=^)\(\s*\)", "", s)
    s = re.sub(r"``([^`]*)``", r"\1", s)
    s = re.sub(r"`[.~]?([^`]*)`_?", r"\1", s)
    s = re.sub(r"\*\*([^*]*)\*\*", r"\1", s)
    s = re.sub(r"(?<!\w)\*([^*\s][^*]*)\*(?!\w)", r"\1", s)
    s = re.sub(r"\b(?:Closes|closes|LP|lp):\s*#\d+(?:\s*,\s*#\d+)*\s*,?\s*", "", s)  # Debian bug refs
    s = re.sub(r"\b(?:Closes|closes):\s*(?=CVE-)", "", s)
    s = re.sub(r";?\s*\b[Cc]loses:\s*bug#\d+(?:\s*,\s*bug#\d+)*\s*", " ", s)
    s = re.sub(r"\(\s*(?:#\d+[,;\s]*|(?:Issue|Pull|PR|issue|pull)\s*#\d+[,;\s]*)+\)", "", s)
    s = re.sub(r"\(?\bhttps?://\S+\)?", "", s)  # bare URLs
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^(?:(?:debian/patches|d/p)/)?\S+?\.(?:patch|diff)\*?:\s+", "", s)  # patch-file prefix
    s = re.sub(r"^(?:debian/patches|d/p)/\S+?:\s+", "", s)
    s = re.sub(r"\s*\(?(?:[Tt]hanks to|Reported by|Found and reported by)\b.*$", "", s)
    s = re.sub(r"(?<=\s)\(\s*\)", "", s)
    s = re.sub(r"\s+([,.;:])(?=\s|$)", r"\1", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = first_sentence(s)
    s = s.strip().rstrip(".").strip()
    s = re.sub(r"[\s,;:]+$", "", s)
    return s


def first_sentence(s: str) -> str:
    for m in re.finditer(r"(?<=[a-z0-9)\"'`.])[.!?](?=\s+[A-Z(\"])", s):
        if not re.search(r"\b(?:e\.g|i\.e|etc|vs)$", s[: m.start()]):
            s = s[: m.end()]
            break
    if len(s) > 240:
        cut = s[:240]
        s = cut[: cut.rfind(" ")] if " " in cut else cut
    return s


def keepable(text: str) -> bool:
    return len(text.split()) >= 3 and re.search(r"[A-Za-z]", text) is not None


def _vkey(p: pathlib.Path):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", p.name)]


def finish(rows: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    out, seen = [], set()
    for text, label, section, f in rows:
        t = clean(text)
        if not keepable(t) or t in seen:
            continue
        seen.add(t)
        out.append((t, label, section, f))
    return spread(out, CAP)


# ---------------------------------------------------------------- generic parsers
def rst_sections(lines: list[str]):
    """Yield (index, title, underline_char) of RST section headings."""
    for i in range(len(lines) - 1):
        t, u = lines[i], lines[i + 1]
        if (
            t.strip()
            and not t.startswith(" ")
            and re.fullmatch(r"([=\-~^\"'`#*+])\1{2,}", u)
            and len(u) >= len(t.rstrip()) - 2
            and not re.fullmatch(r"([=\-~^\"'`#*+])\1+", t)
        ):
            yield i, t.strip(), u[0]


def drop_directives(block: list[str]) -> list[str]:
    """Remove RST directive blocks (".. caution::", ".. code-block::", link targets ...)."""
    out, skip = [], None
    for line in block:
        if skip is not None:
            if not line.strip() or len(line) - len(line.lstrip()) > skip:
                continue
            skip = None
        m = re.match(r"^(\s*)\.\. ", line)
        if m:
            skip = len(m.group(1))
            continue
        out.append(line)
    return out


def bullets(block: list[str], top_only: bool = False) -> list[str]:
    """Split a text block into bullet items (text incl. continuation lines)."""
    block = drop_directives(block)
    items, cur, cur_indent = [], None, None
    for line in block:
        m = re.match(r"^(\s*)([-*+]|\d+\.)\s+(.*)$", line)
        if m and (not top_only or cur is None or len(m.group(1)) <= (cur_indent or 0)):
            if cur is not None:
                items.append(cur)
            cur, cur_indent = m.group(3), len(m.group(1))
        elif m and top_only:
            cur += "\n" + "\x01" + m.group(3)  # nested bullet kept separate
        elif cur is not None and line.strip() and line.startswith(" "):
            cur += "\n" + line.strip()
        elif not line.strip():
            continue
        else:
            if cur is not None:
                items.append(cur)
            cur = None
    if cur is not None:
        items.append(cur)
    return items


def head_text(item: str) -> str:
    """Bullet text without nested sub-bullets."""
    return item.split("\n\x01", 1)[0].replace("\n", " ")


def md_sections(lines: list[str]):
    """Split Markdown text into (heading, body_lines) by ATX/setext headings and **Bold** lines."""
    out, head, body = [], "", []
    for line in lines:
        m = re.match(r"^#{1,6}\s+(.*)$", line) or re.match(r"^\*\*([^*]+)\*\*\s*$", line)
        if m:
            out.append((head, body))
            head, body = m.group(1).strip(), []
        elif re.fullmatch(r"-{3,}|={3,}", line.strip()) and body and body[-1].strip():
            prev = body.pop()
            out.append((head, body))
            head, body = prev.strip(), []
        else:
            body.append(line)
    out.append((head, body))
    return out


# ---------------------------------------------------------------- per-source extractors
def django(root: pathlib.Path):
    rows = {}
    for f in sorted((root / "docs/releases").glob("*.txt"), key=_vkey):
        lines = f.read_text(encoding="utf-8").splitlines()
        for _i, title, _ch in rst_sections(lines):
            m = re.match(r"^CVE-(\d{4})-(\d+)", title)
            if m:
                t = clean(title)
                if t not in rows:
                    rows[t] = (
                        (int(m.group(1)), int(m.group(2))),
                        title,
                        "release notes heading (CVE)",
                        str(f.relative_to(root)),
                    )
    ordered = sorted(rows.values(), key=lambda r: r[0])
    return finish([(r[1], LABEL, r[2], r[3]) for r in ordered])


def pillow(root: pathlib.Path):
    rows = []
    for f in sorted((root / "docs/releasenotes").glob("*.rst"), key=_vkey):
        if f.name in ("template.rst", "index.rst", "versioning.rst"):
            continue
        lines = f.read_text(encoding="utf-8").splitlines()
        heads = list(rst_sections(lines))
        for k, (i, title, ch) in enumerate(heads):
            if title != "Security" or ch != "=":
                continue
            end = next((j for j, t, c in heads[k + 1 :] if c == "="), len(lines))
            subs = [(j, t) for j, t, c in heads[k + 1 :] if j < end and c == "^"]
            rel = str(f.relative_to(root))
            pre = lines[i + 2 : subs[0][0] if subs else end]
            bl = bullets(pre, top_only=True)
            if subs:
                rows += [(head_text(b), LABEL, "Security (bullet)", rel) for b in bl]
                rows += [(t, LABEL, "Security (sub-heading)", rel) for _, t in subs]
            else:
                paras = re.split(r"\n\s*\n", "\n".join(pre))
                for p in paras:
                    p = p.strip()
                    if p and not p.startswith(".."):
                        rows.append((p.lstrip("*- ").replace("\n", " "), LABEL, "Security (paragraph)", rel))
    return finish(rows)


def _rst_security_rows(lines: list[str], rel: str) -> list[tuple[str, str, str, str]]:
    """Bullets of an RST changelog's "Security..." sections, and any bullet naming a CVE/GHSA id."""
    heads = [*list(rst_sections(lines)), (len(lines), "", "")]
    rows = []
    for k in range(len(heads) - 1):
        i, title, _ = heads[k]
        block = lines[i + 2 : heads[k + 1][0]]
        sec = title.lower().startswith("security")
        for b in bullets(block):
            txt = b.replace("\n", " ")
            if sec:
                rows.append((txt, LABEL, title, rel))
            elif SECURITY_ID.search(txt):
                rows.append((txt, LABEL, f"{title} (names CVE/GHSA)", rel))
    return rows


def tornado(root: pathlib.Path):
    rows = []
    for f in sorted((root / "docs/releases").glob("*.rst"), key=_vkey):
        rows += _rst_security_rows(f.read_text(encoding="utf-8").splitlines(), str(f.relative_to(root)))
    return finish(rows)


def md_changelog(root: pathlib.Path, fname: str, top_only: bool = False):
    f = root / fname
    lines = f.read_text(encoding="utf-8").splitlines()
    rows = []
    for head, body in md_sections(lines):
        sec = head.strip().lower() == "security"
        for b in bullets(body, top_only=top_only):
            full = b.replace("\n\x01", " ").replace("\n", " ")
            txt = head_text(b)
            if sec:
                rows.append((txt, LABEL, head, fname))
            elif SECURITY_ID.search(full):
                rows.append((txt, LABEL, f"{head or 'changelog'} (names CVE/GHSA)", fname))
    return finish(rows)


def rst_changelog(root: pathlib.Path, fname: str):
    return finish(_rst_security_rows((root / fname).read_text(encoding="utf-8").splitlines(), fname))


def debian_changelog(root: pathlib.Path):
    gz = next(root.glob("usr/share/doc/*/changelog.Debian.gz"))
    text = gzip.decompress(gz.read_bytes()).decode("utf-8", "replace")
    rel = str(gz.relative_to(root))
    rows = []
    for entry in re.split(r"^\S.*;\s*urgency=.*$", text, flags=re.M)[1:]:
        body = [line for line in entry.splitlines() if not line.startswith(" -- ")]
        # every bullet at any level is its own item (its own text + continuation lines)
        items, cur = [], None
        for line in body:
            m = re.match(r"^(\s+)([*+~-])\s+(.*)$", line)
            if m:
                if cur is not None:
                    items.append(cur)
                cur = m.group(3)
            elif line.strip() and cur is not None and not re.match(r"^\s*\[", line):
                cur += " " + line.strip()
            elif re.match(r"^\s*\[", line):  # "[ Name ]" maintainer group
                if cur is not None:
                    items.append(cur)
                cur = None
        if cur is not None:
            items.append(cur)
        for it in items:
            if SECURITY_ID.search(it):
                rows.append((it, LABEL, "changelog entry naming a CVE", rel))
    return finish(rows)


# ---------------------------------------------------------------- collect
PYPI_EXTRACT = {
    "Django": django,
    "Pillow": pillow,
    "tornado": tornado,
    "requests": lambda r: md_changelog(r, "HISTORY.md"),
    "urllib3": lambda r: rst_changelog(r, "CHANGES.rst"),
    "lxml": lambda r: rst_changelog(r, "CHANGES.txt"),
}
NPM_EXTRACT = {
    "node-forge": lambda r: md_changelog(r, "CHANGELOG.md", top_only=True),
}


def collect(workdir: pathlib.Path) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """(source id, [(text, "security", section, file)]) for every pinned source, CAP each."""
    out = []
    for name, ver in PYPI:
        out.append((f"pypi:{name}=={ver}", PYPI_EXTRACT[name](fetch("pypi", name, ver, workdir))))
    for name, ver in DEBIAN:
        out.append((f"debian:{name}={ver}", debian_changelog(fetch("debian", name, ver, workdir))))
    for name, ver in NPM:
        out.append((f"npm:{name}@{ver}", NPM_EXTRACT[name](fetch("npm", name, ver, workdir))))
    return out
