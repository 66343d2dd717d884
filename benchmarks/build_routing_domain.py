"""Build ``benchmarks/data/routing_domain.jsonl``: real task-like texts for the six agents.

Nothing in the file was written on this project. Every line is one entry from a released package,
labelled by where its upstream project filed it (a changelog section, a changelog tag, an alert rule
file, an advisory database), never by its wording, and it names its origin: ``source`` (registry,
package and version), ``file`` (the path inside the package) and ``section`` (the upstream heading
or tag that gave the label).

Held-out split, v2 (what ``routing_accuracy.py`` scores; collected by ``routing_domain_sources/``
from packages no earlier split used, and scored once, after the router was last changed):

* code, docs, test, infra: changelog sections of 60 npm and PyPI packages (``changelogs.py``) —
  conventional-changelog "Features"/"Bug Fixes"/"Performance Improvements" -> code,
  "Documentation" -> docs, "Tests" -> test, "Build System"/"Continuous Integration" -> infra
  (video.js and its plugins, karma, standard-version, googleapis' Node clients, python-gitlab),
  ESLint's and rollup plugins' per-line commit tags, towncrier sections of aio-libs and Plone
  projects, Jupyter's release notes, mkdocstrings/griffe; at most 15 per package and label.
* security: Django's "CVE-…: title" release-note headings, Pillow's, Tornado's, requests', urllib3's,
  lxml's and node-forge's security sections or CVE entries, and Debian bookworm changelogs of curl,
  libxml2, sudo, libtiff, expat, ghostscript, ImageMagick, OpenSSL and Vim (entries naming a CVE)
  (``advisories.py``; at most 30 per source, evenly spaced).
* ops: Zabbix 6.0 template triggers, PCP's pmie rules, etcd's, the Elasticsearch exporter's and
  SmokePing's alert rules, all from Debian bookworm (``alerts.py``; at most 40 per source).

Each label has the same count (the smallest label's, at most 90), drawn evenly across its sources
(each source's entries shuffled, seed 0, then one from each source in turn).

The first held-out split (v1, below) was scored several times while the rules were written, so it
was retired into the dev split when v2 was collected; its rows are unchanged but for ``split``.

Held-out v1, now dev:

* code: pip ``NEWS.rst`` "Bug Fixes"/"Features"; setuptools ``NEWS.rst`` "Bugfixes"/"Features".
* docs: "Improved Documentation" of pip, setuptools and pytest (``doc/en/changelog.rst``).
* infra: pip "Vendored Libraries" and "Process" (dependency pins, build and release process).
* security: safety-db ``data/insecure_full.json`` advisories; any changelog entry above that names
  a CVE or GHSA id (upstream files such fixes under "Bug Fixes").
* test: SQLAlchemy changelog entries tagged ``tests``; Sphinx's "Testing" sections.
* ops: Ceph's Prometheus alert rules (Debian ``ceph-prometheus-alerts``: alert name and summary)
  and Netdata's health alarms (Debian ``netdata-core``: alarm name and its ``info`` line) from
  half of the ``health.d`` files.

Dev split (for tuning; different packages, or for Netdata different files, from held-out v1):

* alembic, Mako and dogpile.cache changelog tags: ``tests`` -> test, ``documentation``/``docs``
  -> docs, ``installation`` -> infra, other ``bug``/``feature``/``usecase`` entries -> code.
* aiohttp's towncrier changelog: "Bug fixes"/"Features" -> code, "Improved documentation" -> docs,
  "Packaging updates and notes for downstreams" -> infra, "Security bugfixes" -> security;
  pluggy's "Bug Fixes"/"Features" -> code; towncrier's "Improved Documentation" -> docs.
* SQLAlchemy changelog entries tagged ``documentation`` -> docs (the held-out docs come from
  other packages).
* kolla-ansible release notes (reno): ``security`` -> security, ``fixes`` -> infra (a deployment
  tool's fixes are fixes to deployment configuration).
* Netdata alarms from the other half of the ``health.d`` files -> ops.
* CPython 3.11's ``Misc/NEWS`` (Debian ``python3.11``: ``NEWS.gz``), up to 60 per label, added after
  the rows above: "Library" -> code, "Documentation" -> docs, "Build" -> infra, "Security" ->
  security, "Tests" -> test.
* Twisted's, Trio's and twine's towncrier changelogs, up to 60 per label, added last: "Bugfixes" and
  "Features" -> code, "Improved Documentation" -> docs (a CVE or GHSA id -> security).

pytest's and Sphinx's own bug fixes are left out: their subjects are testing and documentation,
so their sections say "code" while their wording says "test" or "docs". Each held-out label is
capped to the same count (deterministic shuffle, seed 0).

Run: ``python benchmarks/build_routing_domain.py`` (needs ``npm`` and ``apt-get``). It downloads
the pinned source distributions, Debian packages and npm tarballs (``routing_domain_sources/_fetch.py``)
into a temporary directory.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import yaml
from routing_domain_sources import SECURITY_ID, alerts, changelogs
from routing_domain_sources import advisories as advisory_sources
from routing_domain_sources._fetch import fetch

OUT = Path(__file__).parent / "data" / "routing_domain.jsonl"
PYPI = {
    "pip": "26.3",
    "setuptools": "84.2.1",
    "pytest": "9.2.0",
    "safety-db": "2021.7.17",
    "sqlalchemy": "2.1.9",
    "sphinx": "9.0.4",
    "alembic": "1.20.1",
    "kolla-ansible": "22.2.0",
    "aiohttp": "3.14.5",
    "towncrier": "26.9.0",
    "pluggy": "1.7.0",
    "mako": "1.4.3",
    "dogpile.cache": "1.5.0",
    "twisted": "26.10.0",
    "trio": "0.35.0",
    "twine": "7.0.0",
}
DEBIAN = {
    "ceph-prometheus-alerts": "16.2.15+ds-0+deb12u2",
    "netdata-core": "1.37.1-2",
    "python3.11": "3.11.2-6+deb12u8",
}
SECTIONS = {
    "pip": {
        "Bug Fixes": "code",
        "Features": "code",
        "Improved Documentation": "docs",
        "Vendored Libraries": "infra",
        "Process": "infra",
    },
    "setuptools": {
        "Bugfixes": "code",
        "Features": "code",
        "Documentation changes": "docs",
        "Improved Documentation": "docs",
    },
    "pytest": {"Improved Documentation": "docs", "Improved documentation": "docs"},
}
CHANGELOGS = {"pip": "NEWS.rst", "setuptools": "NEWS.rst", "pytest": "doc/en/changelog.rst"}
# Dev-split towncrier changelogs of other packages (towncrier's own fixes are about writing
# changelogs, so like pytest's and Sphinx's they are left out; its documentation entries stay).
DEV_SECTIONS = {
    "aiohttp": {
        "Bug fixes": "code",
        "Bugfixes": "code",
        "Features": "code",
        "Improved Documentation": "docs",
        "Improved documentation": "docs",
        "Packaging updates and notes for downstreams": "infra",
        "Security bugfixes": "security",
    },
    "towncrier": {"Improved Documentation": "docs"},
    "pluggy": {"Bug Fixes": "code", "Features": "code"},
}
DEV_CHANGELOGS = {"aiohttp": "CHANGES.rst", "towncrier": "NEWS.rst", "pluggy": "CHANGELOG.rst"}
TAGGED_CHANGELOGS = {
    "alembic": "docs/build/changelog.rst",
    "mako": "doc/build/changelog.rst",
    "dogpile.cache": "docs/build/changelog.rst",
}
# CPython's ``Misc/NEWS`` (shipped by Debian's python3.11 as NEWS.gz): a second dev source, added
# after the first so the earlier dev rows stay as they were. Mostly for test and security, which the
# first dev sources have few of.
CPYTHON_SECTIONS = {
    "Library": "code",
    "Documentation": "docs",
    "Build": "infra",
    "Security": "security",
    "Tests": "test",
}
# A third dev source, again added after the others: towncrier changelogs of a networking library, an
# async library and a packaging tool, for more code and docs entries in the held-out split's style.
TOWNCRIER_DEV = {
    "twisted": "NEWS.rst",
    "trio": "docs/source/history.rst",
    "twine": "docs/changelog.rst",
}
TOWNCRIER_SECTIONS = {
    "Bugfixes": "code",
    "Features": "code",
    "Improved Documentation": "docs",
    "Improved documentation": "docs",
}
LABELS = ("code", "docs", "infra", "ops", "security", "test")
PER_LABEL = 60
HELDOUT_MAX_PER_LABEL = 90
DEV_PER_LABEL = 80
CPYTHON_PER_LABEL = 60
Row = dict[str, str]
Entries = tuple[str, list[tuple[str, str, str, str]]]  # (source id, [(text, label, section, file)])


def download(workdir: Path) -> dict[str, Path]:
    """Fetch and unpack every pinned package; returns the unpacked roots by package name."""
    roots = {name: fetch("pypi", name, version, workdir) for name, version in PYPI.items()}
    roots |= {name: fetch("debian", name, version, workdir) for name, version in DEBIAN.items()}
    return roots


def clean(text: str) -> str:
    """Strip reStructuredText markup, issue links and credits; keep the first sentence."""
    text = re.sub(r"\*Related issues and pull requests on GitHub:\*.*$", "", text)  # aiohttp's links
    text = re.sub(r"^`#\d+ <[^>]*>`_+:\s*", "", text)
    text = re.sub(r"\(`#\d+ <[^>]*>`_+\)", "", text)
    text = re.sub(r"#\d+:\s*", "", text)
    text = re.sub(r"\s*\(#\d+\)", "", text)
    text = re.sub(r"\s*\(#[0-9A-F-]{8,}\)", "", text)  # setuptools' anonymous news fragments
    text = re.sub(r":\w+:`!?([^`<]*?)\s*(<[^>]*>)?`", r"\1", text)
    text = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", text)
    text = text.replace("``", "").replace("`", "")
    text = " ".join(text.split())
    text = re.sub(r"^\d+:\s*", "", text)  # pytest's older entries start with an issue role
    first = re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z])", text)[0]
    first = re.sub(r"\s+-- by @?[\w-]+\.?$", "", first.rstrip("."))  # credits
    first = re.sub(r"\s*(Pull request|Patch) courtesy .*$", "", first)
    return first.rstrip(".")[:240]


def changelog_entries(path: Path, sections: dict[str, str]) -> list[tuple[str, str, str]]:
    """(text, label, section) for the bulleted entries under the mapped headings of an RST changelog."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[tuple[str, str, str]] = []
    heading = ""
    label: str | None = None
    current: list[str] = []

    def flush() -> None:
        if label and current:
            text = clean(" ".join(current))
            if len(text.split()) >= 3:
                out.append((text, "security" if SECURITY_ID.search(" ".join(current)) else label, heading))
        current.clear()

    for i, line in enumerate(lines):
        underline = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"[-=~^]{3,}", underline.strip()):
            flush()
            heading = line.strip()
            label = sections.get(heading)
        elif re.match(r"[-*] ", line):
            flush()
            current.append(line[2:])
        elif line.startswith("  ") and current:
            current.append(line.strip())
        elif not line.strip():
            continue
        elif not re.fullmatch(r"[-=~^]{3,}", line.strip()):
            flush()
    flush()
    return out


def tagged_changes(path: Path) -> Iterator[tuple[set[str], str]]:
    """(tags, first sentence) of each ``.. change::`` block of a changelog_ extension file (SQLAlchemy, alembic)."""
    blocks = re.split(r"^\s*\.\. change::.*$", path.read_text(encoding="utf-8"), flags=re.M)[1:]
    for block in blocks:
        tags: set[str] = set()
        body: list[str] = []
        for line in block.splitlines():
            stripped = line.strip()
            if stripped.startswith(":tags:"):
                tags = {t.strip().lower() for t in stripped[6:].split(",") if t.strip()}
            elif stripped.startswith(":") or stripped.startswith(".. "):
                continue
            elif stripped and not line.startswith(" "):
                break  # the block ended: the next heading or paragraph at column 0
            elif stripped:
                body.append(stripped)
        text = clean(" ".join(body))
        if len(text.split()) >= 3:
            yield tags, text


def sqlalchemy_tagged(root: Path, tag: str, label: str) -> list[tuple[str, str, str, str]]:
    """SQLAlchemy changelog entries with ``tag`` (``tests``: held-out test; ``documentation``: dev docs)."""
    files = sorted((root / "doc" / "build" / "changelog").glob("**/*.rst"))
    return [
        (text, label, f"tags: {', '.join(sorted(tags))}", str(path.relative_to(root)))
        for path in files
        for tags, text in tagged_changes(path)
        if tag in tags
    ]


def tagged_dev_changes(root: Path, changelog: str) -> list[tuple[str, str, str, str]]:
    """A changelog_ extension file (dev split: alembic, Mako, dogpile.cache): tests, docs and
    installation tags, and plain bug/feature entries."""
    path = root / changelog
    out = []
    for tags, text in tagged_changes(path):
        if "tests" in tags:
            label = "test"
        elif tags & {"documentation", "docs"}:
            label = "docs"
        elif tags & {"installation", "build", "packaging"}:
            label = "infra"
        elif tags & {"bug", "feature", "usecase"}:
            label = "code"
        else:
            continue
        if SECURITY_ID.search(text):
            label = "security"
        out.append((text, label, f"tags: {', '.join(sorted(tags))}", str(path.relative_to(root))))
    return out


def sphinx_testing(root: Path) -> list[tuple[str, str, str, str]]:
    """Sphinx's "Testing" changelog sections."""
    files = [root / "CHANGES.rst", *sorted((root / "doc" / "changes").glob("*.rst"))]
    return [
        (text, label, section, str(path.relative_to(root)))
        for path in files
        if path.exists()
        for text, label, section in changelog_entries(path, {"Testing": "test"})
    ]


def reno_notes(root: Path) -> list[tuple[str, str, str, str]]:
    """kolla-ansible release notes (dev split): ``security`` -> security, ``fixes`` -> infra."""
    out = []
    for path in sorted((root / "releasenotes" / "notes").glob("*.yaml")):
        note = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for section, label in (("security", "security"), ("fixes", "infra")):
            for entry in note.get(section) or []:
                text = clean(str(entry))
                if len(text.split()) >= 3:
                    out.append((text, label, section, str(path.relative_to(root))))
    return out


def advisories(root: Path) -> list[tuple[str, str, str, str]]:
    """Every safety-db advisory text, labelled security."""
    path = root / "data" / "insecure_full.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    texts = [clean(item["advisory"]) for key, items in data.items() if key != "$meta" for item in items]
    return [(t, "security", "advisory", str(path.relative_to(root))) for t in texts if len(t.split()) >= 4]


def _untemplate(text: str) -> str:
    text = re.sub(r"\{\{.*?\}\}|\$\{[^}]*\}|\$\w+", "", text)
    return " ".join(text.split()).rstrip(".")


def ceph_alerts(root: Path) -> list[tuple[str, str, str, str]]:
    """Ceph's Prometheus alert rules: "AlertName: summary"."""
    path = root / "etc" / "prometheus" / "ceph" / "ceph_default_alerts.yml"
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    out = []
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                summary = _untemplate(rule.get("annotations", {}).get("summary", ""))
                out.append(
                    (f"{rule['alert']}: {summary}", "ops", f"group: {group['name']}", str(path.relative_to(root)))
                )
    return out


def netdata_alarms(root: Path, *, dev: bool) -> list[tuple[str, str, str, str]]:
    """Netdata health alarms ("name: info"); ``dev`` picks the other half of the files."""
    out = []
    for path in sorted((root / "usr" / "lib" / "netdata" / "conf.d" / "health.d").glob("*.conf")):
        if (hashlib.sha256(path.name.encode()).digest()[0] % 2 == 1) != dev:
            continue
        name = None
        text = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))  # join continued lines
        for line in text.splitlines():
            m = re.match(r"\s*(alarm|template):\s*(\S+)", line)
            if m:
                name = m.group(2)
            m = re.match(r"\s*info:\s*(.+)", line)
            if m and name:
                out.append((f"{name}: {_untemplate(m.group(1))}", "ops", "health alarm", str(path.relative_to(root))))
                name = None
    return out


def cpython_news(root: Path) -> list[tuple[str, str, str, str]]:
    """CPython's changelog (dev split): Library, Documentation, Build, Security and Tests sections."""
    path = root / "usr" / "share" / "doc" / "python3.11" / "NEWS.gz"
    with tempfile.TemporaryDirectory() as tmp:
        news = Path(tmp) / "NEWS.rst"
        news.write_bytes(gzip.decompress(path.read_bytes()))
        entries = changelog_entries(news, CPYTHON_SECTIONS)
    out = []
    for text, label, section in entries:
        text = re.sub(r"^(gh-issue|bpo)-\d+:\s*", "", text)
        if len(text.split()) >= 3:
            out.append((text, label, section, str(path.relative_to(root))))
    return out


def _key(text: str) -> str:
    """What two entries share when they are the same text (case, punctuation and spacing aside)."""
    return re.sub(r"\W+", " ", text.lower()).strip()


def _source(name: str) -> str:
    return f"pypi:{name}=={PYPI[name]}" if name in PYPI else f"debian:{name}={DEBIAN[name]}"


def build(roots: dict[str, Path], heldout: list[Entries]) -> list[Row]:
    """Label, deduplicate, balance and split the entries; ``heldout`` is what the v2 collectors returned."""
    held: list[tuple[str, list[tuple[str, str, str, str]]]] = [
        (
            name,
            [
                (t, lb, sec, CHANGELOGS[name])
                for t, lb, sec in changelog_entries(roots[name] / CHANGELOGS[name], SECTIONS[name])
            ],
        )
        for name in SECTIONS
    ]
    held += [
        ("safety-db", advisories(roots["safety-db"])),
        ("sqlalchemy", sqlalchemy_tagged(roots["sqlalchemy"], "tests", "test")),
        ("sphinx", sphinx_testing(roots["sphinx"])),
        ("ceph-prometheus-alerts", ceph_alerts(roots["ceph-prometheus-alerts"])),
        ("netdata-core", netdata_alarms(roots["netdata-core"], dev=False)),
    ]
    dev = [(name, tagged_dev_changes(roots[name], path)) for name, path in TAGGED_CHANGELOGS.items()]
    dev += [
        (
            name,
            [
                (t, lb, sec, DEV_CHANGELOGS[name])
                for t, lb, sec in changelog_entries(roots[name] / DEV_CHANGELOGS[name], DEV_SECTIONS[name])
            ],
        )
        for name in DEV_SECTIONS
    ]
    dev += [
        ("kolla-ansible", reno_notes(roots["kolla-ansible"])),
        ("sqlalchemy", sqlalchemy_tagged(roots["sqlalchemy"], "documentation", "docs")),
        ("netdata-core", netdata_alarms(roots["netdata-core"], dev=True)),
    ]
    seen: set[str] = set()
    rows: list[Row] = []
    rng = random.Random(0)
    extra_dev = [("python3.11", cpython_news(roots["python3.11"]))]
    towncrier_dev = [
        (name, [(t, lb, sec, path) for t, lb, sec in changelog_entries(roots[name] / path, TOWNCRIER_SECTIONS)])
        for name, path in TOWNCRIER_DEV.items()
    ]
    passes = (
        ("dev", held, PER_LABEL),  # held-out v1, retired into dev
        ("dev", dev, DEV_PER_LABEL),
        ("dev", extra_dev, CPYTHON_PER_LABEL),
        ("dev", towncrier_dev, CPYTHON_PER_LABEL),
    )
    for index, (split, sources, cap) in enumerate(passes):
        by_label: dict[str, list[Row]] = defaultdict(list)
        for name, entries in sources:
            for text, label, section, file in entries:
                key = _key(text)
                if key not in seen:
                    seen.add(key)
                    by_label[label].append(
                        {
                            "text": text,
                            "label": label,
                            "split": split,
                            "source": _source(name),
                            "file": file,
                            "section": section,
                        }
                    )
        if index == 0:  # held-out v1 was balanced to its smallest label
            cap = min(cap, *(len(by_label[label]) for label in LABELS))
        for label in LABELS:
            items = by_label[label]
            rng.shuffle(items)
            rows += items[:cap]
    return rows + balanced_heldout(heldout, seen, rng)


def balanced_heldout(sources: list[Entries], seen: set[str], rng: random.Random) -> list[Row]:
    """Held-out v2: entries no earlier row has, the same count per label, drawn evenly across sources."""
    by_label: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for source, entries in sources:
        for text, label, section, file in entries:
            key = _key(text)
            if key not in seen:
                seen.add(key)
                by_label[label][source].append(
                    {
                        "text": text,
                        "label": label,
                        "split": "heldout",
                        "source": source,
                        "file": file,
                        "section": section,
                    }
                )
    per_label = min(HELDOUT_MAX_PER_LABEL, *(sum(map(len, by_label[label].values())) for label in LABELS))
    rows: list[Row] = []
    for label in LABELS:
        queues = [by_label[label][source] for source in sorted(by_label[label])]
        for queue in queues:
            rng.shuffle(queue)
        taken: list[Row] = []
        while len(taken) < per_label:  # one from each source in turn
            for queue in queues:
                if queue and len(taken) < per_label:
                    taken.append(queue.pop())
        rows += taken
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        heldout = [*changelogs.collect(work), *advisory_sources.collect(work), *alerts.collect(work)]
        rows = build(download(work), heldout)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    counts = Counter((row["split"], row["label"]) for row in rows)
    print(f"{len(rows)} items -> {OUT}")
    for split in ("heldout", "dev"):
        print(f"  {split}: {dict(sorted((lb, n) for (s, lb), n in counts.items() if s == split))}")


if __name__ == "__main__":
    main()
