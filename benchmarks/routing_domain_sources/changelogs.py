"""Held-out routing items from upstream changelog sections (code, docs, test, infra; CVE/GHSA entries: security).

Labels come only from where upstream filed an entry: the changelog section heading
(conventional-changelog / release-please / python-semantic-release / towncrier /
github-activity), or, for the ESLint-family and @rollup plugins, the commit-type tag
that prefixes each changelog line ("Docs:", "Build:", "docs:", "test:" ...).
The entry wording is never looked at for labelling (except the house CVE/GHSA rule).

At most CAP entries per (package, label) are kept, the first in file order.
"""

from __future__ import annotations

import pathlib
import re
import sys
from collections import Counter

from routing_domain_sources import SECURITY_ID
from routing_domain_sources._fetch import fetch

CAP = 15  # max items per (package, label)

# ---------------------------------------------------------------- section maps
CC = {  # conventional-changelog style headings
    "features": "code",
    "bug fixes": "code",
    "performance improvements": "code",
    "documentation": "docs",
    "tests": "test",
    "testing": "test",
    "build system": "infra",
    "continuous integration": "infra",
}
GOOGLE = {"features": "code", "bug fixes": "code", "documentation": "docs", "build system": "infra"}
TOWNCRIER_AIO = {  # aio-libs towncrier config
    "features": "code",
    "bug fixes": "code",
    "bugfixes": "code",
    "improved documentation": "docs",
    "packaging updates and notes for downstreams": "infra",
}
JUPYTER = {  # github-activity / jupyter-releaser
    "enhancements made": "code",
    "bugs fixed": "code",
    "documentation improvements": "docs",
}
MOCHA = {"fixes": "code", "enhancements": "code", "documentation": "docs", "documentation & website": "docs"}
PAWAMOY = {
    "features": "code",
    "bug fixes": "code",
    "performance improvements": "code",
    "build": "infra",
    "packaging": "infra",
}
PLONE = {"new features": "code", "bug fixes": "code", "documentation": "docs", "tests": "test"}
ESLINT_TAGS = {"fix": "code", "update": "code", "new": "code", "docs": "docs", "build": "infra"}
ROLLUP_TYPES = {
    "fix": "code",
    "feat": "code",
    "perf": "code",
    "docs": "docs",
    "test": "test",
    "build": "infra",
    "ci": "infra",
}

# (ecosystem, name, version, file inside package, parser, section map)
SOURCES = [
    # --- npm, conventional-changelog-videojs preset (shows Tests/Documentation)
    ("npm", "video.js", "8.24.1", "CHANGELOG.md", "md", CC),
    ("npm", "@videojs/http-streaming", "2.16.2", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-ima", "2.6.0", "CHANGELOG.md", "md", CC),
    ("npm", "mpd-parser", "1.4.0", "CHANGELOG.md", "md", CC),
    ("npm", "m3u8-parser", "7.2.0", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-contrib-eme", "3.11.1", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-vr", "2.0.0", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-contrib-ads", "7.5.2", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-generate-karma-config", "8.1.0", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-generate-rollup-config", "7.0.2", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-errors", "6.2.0", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-playlist", "5.2.0", "CHANGELOG.md", "md", CC),
    ("npm", "videojs-flash", "2.2.1", "CHANGELOG.md", "md", CC),
    # --- npm, other conventional-changelog users
    ("npm", "standard-version", "9.5.0", "CHANGELOG.md", "md", CC),
    ("npm", "karma", "6.4.4", "CHANGELOG.md", "md", CC),
    # --- npm, release-please (googleapis) — "Internal / Testing Changes" skipped (mixed)
    ("npm", "@google-cloud/storage", "5.3.0", "CHANGELOG.md", "md", GOOGLE),
    ("npm", "@google-cloud/pubsub", "2.5.0", "CHANGELOG.md", "md", GOOGLE),
    ("npm", "@google-cloud/firestore", "4.4.0", "CHANGELOG.md", "md", GOOGLE),
    ("npm", "@google-cloud/logging", "8.0.0", "CHANGELOG.md", "md", GOOGLE),
    ("npm", "@google-cloud/bigquery", "5.3.0", "CHANGELOG.md", "md", GOOGLE),
    ("npm", "google-auth-library", "6.1.0", "CHANGELOG.md", "md", GOOGLE),
    ("npm", "gcp-metadata", "4.2.0", "CHANGELOG.md", "md", GOOGLE),
    ("npm", "googleapis-common", "4.4.0", "CHANGELOG.md", "md", GOOGLE),
    # --- npm, mocha emoji sections
    ("npm", "mocha", "8.4.0", "CHANGELOG.md", "md", MOCHA),
    # --- npm, ESLint commit-tag changelogs ("* hash Tag: subject (#n) (Author)")
    ("npm", "eslint", "7.32.0", "CHANGELOG.md", "eslint", ESLINT_TAGS),
    ("npm", "espree", "7.3.1", "CHANGELOG.md", "eslint", ESLINT_TAGS),
    ("npm", "doctrine", "3.0.0", "CHANGELOG.md", "eslint", ESLINT_TAGS),
    ("npm", "eslint-scope", "5.1.1", "CHANGELOG.md", "eslint", ESLINT_TAGS),
    ("npm", "@eslint/eslintrc", "0.4.3", "CHANGELOG.md", "eslint", ESLINT_TAGS),
    # --- npm, @rollup plugins: "- type: subject" lines, label by commit type
    ("npm", "@rollup/plugin-node-resolve", "13.3.0", "CHANGELOG.md", "cctype", ROLLUP_TYPES),
    ("npm", "@rollup/plugin-babel", "5.3.1", "CHANGELOG.md", "cctype", ROLLUP_TYPES),
    # --- PyPI, python-semantic-release
    ("pypi", "python-gitlab", "8.6.0", "CHANGELOG.md", "md", CC),
    # --- PyPI, aio-libs towncrier
    ("pypi", "yarl", "1.25.1", "CHANGES.rst", "rst", TOWNCRIER_AIO),
    ("pypi", "multidict", "7.2.1", "CHANGES.rst", "rst", TOWNCRIER_AIO),
    ("pypi", "frozenlist", "1.8.0", "CHANGES.rst", "rst", TOWNCRIER_AIO),
    ("pypi", "propcache", "0.5.4", "CHANGES.rst", "rst", TOWNCRIER_AIO),
    # --- PyPI, other towncrier / sectioned
    (
        "pypi",
        "pytest-xdist",
        "3.8.0",
        "CHANGELOG.rst",
        "rst",
        {"features": "code", "bug fixes": "code", "improved documentation": "docs"},
    ),
    (
        "pypi",
        "pyramid",
        "2.1",
        "HISTORY.rst",
        "rst",
        {"features": "code", "bug fixes": "code", "documentation": "docs", "documentation changes": "docs"},
    ),
    (
        "pypi",
        "pdm",
        "2.29.4",
        "CHANGELOG.md",
        "md",
        {
            "features & improvements": "code",
            "bug fixes": "code",
            "documentation": "docs",
            "improved documentation": "docs",
        },
    ),
    ("pypi", "urllib3", "2.8.0", "CHANGES.rst", "rst", {"features": "code", "bugfixes": "code"}),
    # --- PyPI, Plone towncrier (news types incl. "Tests")
    ("pypi", "Products.CMFPlone", "6.2.2", "CHANGES.md", "md", PLONE),
    ("pypi", "plone.restapi", "10.0.4", "CHANGES.md", "md", PLONE),
    ("pypi", "plone.api", "3.0.3", "CHANGES.md", "md", PLONE),
    ("pypi", "plone.distribution", "4.0.0", "CHANGES.md", "md", PLONE),
    # --- PyPI, jupyter github-activity
    ("pypi", "jupyter_server", "2.21.1", "CHANGELOG.md", "md", JUPYTER),
    ("pypi", "jupyter_client", "8.10.0", "CHANGELOG.md", "md", JUPYTER),
    ("pypi", "nbconvert", "7.17.2", "CHANGELOG.md", "md", JUPYTER),
    ("pypi", "traitlets", "5.16.1", "CHANGELOG.md", "md", JUPYTER),
    # --- PyPI, git-changelog (pawamoy)
    ("pypi", "mkdocstrings", "1.0.8", "CHANGELOG.md", "md", PAWAMOY),
    ("pypi", "griffe", "2.4.1", "CHANGELOG.md", "md", PAWAMOY),
    ("pypi", "git-changelog", "2.10.0", "CHANGELOG.md", "md", PAWAMOY),
]


# ---------------------------------------------------------------- cleaning
_EMOJI_HEAD = re.compile(r"^(?::[a-z0-9_+-]+:\s*|[^\w\s(]+\s*)+")


def norm_heading(h: str) -> str:
    h = re.sub(r"<[^>]+>", "", h)
    h = _EMOJI_HEAD.sub("", h.strip())
    h = h.replace("*", "").strip().rstrip(":").strip()
    return h.lower()


def clean(t: str, eslint: bool = False) -> str:
    t = t.strip()
    # scope prefixes: "**scope:** x" (conventional-changelog), "**scope**: x" (PSR)
    t = re.sub(r"^\*\*[^*]{1,60}:\*\*\s*", "", t)
    t = re.sub(r"^\*\*[^*]{1,60}\*\*:\s*", "", t)
    t = re.sub(r"^\*[^*]{1,60}\*:\s*", "", t)
    # markdown images, links
    t = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", t)
    t = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", t)
    # rst: references/roles
    t = re.sub(r":(?:issue|issues|pr|prs|user|ghuser|commit|gh|bug|cve)s?:`[^`]*`", "", t)
    t = re.sub(r":[a-zA-Z:]+:`~?!?([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", t)
    t = re.sub(r"`([^`<]+?)\s*<[^>]+>`__?", r"\1", t)
    t = re.sub(r"`([^`]+)`_", r"\1", t)
    # code ticks and emphasis
    t = re.sub(r"`+([^`]*)`+", r"\1", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"\1", t)
    t = re.sub(r"(?<!\w)__([^_]+)__(?!\w)", r"\1", t)
    t = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\1", t)
    # raw urls
    t = re.sub(r"https?://\S+", "", t)
    # leading issue refs like "#4630: " (mocha)
    t = re.sub(r"^(?:#\d+[,\s]*)+:\s*", "", t)
    # commit hashes "(abc1234)" and issue refs "(#12)", "(fixes #12)", "closes #12, #13"
    t = re.sub(r"\(\s*[0-9a-f]{7,40}(?:\s+by\s+[^)]*)?\s*\)", "", t)
    t = re.sub(
        r"\(\s*(?:(?:fixes|fix|refs|ref|closes|close|resolves|see)\s+)?#\d+"
        r"(?:\s*,\s*#\d+)*\s*\)",
        "",
        t,
        flags=re.I,
    )
    t = re.sub(r",?\s*(?:closes|fixes|resolves|refs)\s+#\d+(?:\s*,?\s*(?:and\s+)?#\d+)*", "", t, flags=re.I)
    t = re.sub(r"\(\s*\)", "", t)
    t = re.sub(r",?\s*closes\s+\S*#\S+.*$", "", t, flags=re.I)
    t = re.sub(r"\(\s*(?:#\d+|@[\w-]+|[0-9a-f]{7,40})(?:\s*[;,]\s*(?:#\d+|@[\w-]+|[0-9a-f]{7,40}))*\s*\)", "", t)
    # credits
    t = re.sub(r"\(\s*@[\w-]+(?:\s*,\s*@[\w-]+)*\s*\)", "", t)
    t = re.sub(r"\s[-\u2014\u2013]*\s*by\s+@?[\w-]+(?:\s*(?:,|and)\s*@?[\w-]+)*\s*\.?\s*$", "", t)
    t = re.sub(r"\s*[-\u2014\u2013]+\s*by\s*$", "", t)
    t = re.sub(r"\s+by\s+@[\w-]+", "", t)
    t = re.sub(r"\bThanks?(?: you)? to\b.*$", "", t, flags=re.I)
    # conventional type prefix left inside an entry ("docs(samples): x")
    t = re.sub(
        r"^(?:feat|fix|docs?|chore|build|ci|tests?|perf|refactor|style|revert)"
        r"(?:\([^)]*\))?!?:\s+",
        "",
        t,
    )
    t = re.sub(r"\s*[-\u2014\u2013]+\s*by\s*(?=[.\s]|$)", " ", t)
    if eslint:  # trailing "(Author Name)"
        t = re.sub(r"\s*\([^()]*\)\s*$", "", t)
    t = re.sub(r"\s+", " ", t).strip()
    # first sentence
    m = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)\.\s+(?=[A-Z(`\"'])", t)
    if m:
        t = t[: m.start()]
    if len(t) > 240:
        t = t[:240].rsplit(" ", 1)[0]
    for _ in range(2):  # trailing refs / handles / credits left after the cut
        t = re.sub(r"(?:\s*\[@?[\w.-]+\])+\s*$", "", t)
        t = re.sub(r"(?<!\bon)(?<!\bin)(?<!\bto)(?<!\bof)(?<!\bsee)(?:\s+(?:#\d+|@[\w-]+),?)+\s*$", "", t)
        t = re.sub(r"\s*[-\u2014\u2013]+\s*by\s*$", "", t)
        t = t.strip().rstrip(".:;,").strip()
    t = re.sub(r"\s+", " ", t)
    return t


# ---------------------------------------------------------------- parsers
def _entries_md(lines):
    """Yield (heading, raw_entry) for bullet entries under markdown headings."""
    heading = None
    cur = None
    for line in [*lines, ""]:
        hm = re.match(r"^#{1,6}\s+(.*)$", line)
        bm = re.match(r"^(\s*)[*-]\s+(.*)$", line)
        if (hm or not line.strip() or bm) and cur is not None:
            yield heading, cur
            cur = None
        if hm:
            heading = hm.group(1)
        elif bm:
            cur = bm.group(2)
        elif line.strip() and cur is not None and line[:1].isspace():
            cur += " " + line.strip()
        elif line.strip() and not line[:1].isspace():
            cur = None
    if cur is not None:
        yield heading, cur


def _entries_rst(lines):
    heading = None
    cur = None
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < n else ""
        is_title = (
            line.strip()
            and not line[:1].isspace()
            and re.match(r"^([=\-~^\"'`#*+])\1{2,}\s*$", nxt)
            and len(nxt.strip()) >= len(line.strip()) - 2
        )
        bm = re.match(r"^[*-]\s+(.*)$", line)
        if (is_title or bm or not line.strip() or not line[:1].isspace()) and cur is not None:
            yield heading, cur
            cur = None
        if is_title:
            heading = line.strip()
            i += 2
            continue
        if bm:
            cur = bm.group(1)
        elif line.strip() and cur is not None and line[:1].isspace():
            cur += " " + line.strip()
        i += 1
    if cur is not None:
        yield heading, cur


_ESL = re.compile(r"^\* (?:\[`?[0-9a-f]{7,40}`?\]\([^)]*\)|`?[0-9a-f]{7,40}`?) ([A-Za-z]+): (.+)$")
_CCT = re.compile(r"^[*-] ([a-z]+)(?:\([^)]*\))?!?: (.+)$")


def parse(path: pathlib.Path, kind: str, smap: dict):
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    out = []
    if kind in ("md", "rst"):
        it = _entries_md(lines) if kind == "md" else _entries_rst(lines)
        for heading, raw in it:
            if heading is None:
                continue
            sec = norm_heading(heading)
            if sec not in smap:
                continue
            shown = _EMOJI_HEAD.sub("", re.sub(r"<[^>]+>", "", heading).strip()).replace("*", "").strip().rstrip(":")
            out.append((raw, smap[sec], shown, False))
    elif kind == "eslint":
        for line in lines:
            m = _ESL.match(line)
            if m and m.group(1).lower() in smap:
                out.append((m.group(2), smap[m.group(1).lower()], m.group(1) + ":", True))
    elif kind == "cctype":
        for line in lines:
            m = _CCT.match(line)
            if m and m.group(1) in smap:
                out.append((m.group(2), smap[m.group(1)], m.group(1) + ":", False))
    items = []
    for raw, label, sec, esl in out:
        if SECURITY_ID.search(raw):
            label = "security"
        text = clean(raw, eslint=esl)
        if len(re.findall(r"\w+", text)) < 3:
            continue
        items.append((text, label, sec, path.name))
    return items


def collect(workdir: pathlib.Path) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """(source id, [(text, label, section, file)]) for every source in SOURCES, CAP per label."""
    res = []
    for eco, name, ver, rel, kind, smap in SOURCES:
        sid = f"npm:{name}@{ver}" if eco == "npm" else f"pypi:{name}=={ver}"
        path = fetch(eco, name, ver, workdir) / rel
        if not path.exists():
            print(f"!! {sid}: {rel} missing", file=sys.stderr)
            continue
        taken: Counter[str] = Counter()
        items = []
        for text, label, sec, _ in parse(path, kind, smap):
            if taken[label] < CAP:
                taken[label] += 1
                items.append((text, label, sec, rel))
        res.append((sid, items))
    return res
