"""Build ``benchmarks/data/routing_domain.jsonl``: real change descriptions labelled by kind of change.

Nothing in the file was written on this project. Each line is one entry from a released source
distribution on PyPI, labelled by the section the upstream project filed it under (never by its
wording), with the package and version it came from:

* pip ``NEWS.rst``: "Bug Fixes" and "Features" -> code, "Improved Documentation" -> docs,
  "Vendored Libraries" and "Process" (dependency pins, build and release process) -> infra.
* setuptools ``NEWS.rst``: "Bugfixes" and "Features" -> code, "Documentation changes" and
  "Improved Documentation" -> docs.
* pytest ``doc/en/changelog.rst``: "Improved Documentation" -> docs only. pytest's bug fixes are
  left out: the project's subject is testing, so its section says "code" while its wording says "test".
* safety-db ``data/insecure_full.json``: every advisory -> security.
* Any changelog entry that names a CVE id or a GHSA id is labelled security whatever its section
  (the upstream release notes file such fixes under "Bug Fixes").

The set has no ``test`` or ``ops`` items: none of the packages reachable here labels test-only
changes or ships alerts. Labels are capped to the same count (deterministic shuffle, seed 0) and
every third item goes to the ``dev`` split (the only part anyone may read while writing the agents'
examples); the rest is ``heldout`` and is what ``routing_accuracy.py`` scores.

Run: ``python benchmarks/build_routing_domain.py`` (downloads four sdists with pip into a temp dir).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).parent / "data" / "routing_domain.jsonl"
PACKAGES = {"pip": "26.3", "setuptools": "84.2.1", "pytest": "9.2.0", "safety-db": "2021.7.17"}
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
PER_LABEL = 120
SECURITY_ID = re.compile(r"\bCVE-\d{4}-\d+|\bGHSA-", re.I)


def download(workdir: Path) -> dict[str, Path]:
    """Fetch and unpack each pinned sdist; returns the unpacked roots."""
    roots = {}
    for name, version in PACKAGES.items():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{name}=={version}",
                "-d",
                str(workdir),
            ],
            check=True,
        )
        archive = next(workdir.glob(f"{name.replace('-', '?')}-{version}.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(workdir, filter="data")
        roots[name] = workdir / archive.name.removesuffix(".tar.gz")
    return roots


def clean(text: str) -> str:
    """Strip reStructuredText markup and issue links; keep the first sentence."""
    text = re.sub(r"^`#\d+ <[^>]*>`_+:\s*", "", text)
    text = re.sub(r"\(`#\d+ <[^>]*>`_+\)", "", text)
    text = re.sub(r"#\d+:\s*", "", text)
    text = re.sub(r"\s*\(#\d+\)", "", text)
    text = re.sub(r"\s*\(#[0-9A-F-]{8,}\)", "", text)  # setuptools' anonymous news fragments
    text = re.sub(r":\w+:`([^`<]*?)\s*(<[^>]*>)?`", r"\1", text)
    text = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", text)
    text = text.replace("``", "").replace("`", "")
    text = " ".join(text.split())
    text = re.sub(r"^\d+:\s*", "", text)  # pytest's older entries start with an issue role
    first = re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z])", text)[0]
    first = re.sub(r"\s+-- by @?[\w-]+\.?$", "", first.rstrip("."))  # credits
    return first.rstrip(".")[:240]


def changelog_entries(path: Path, sections: dict[str, str]) -> list[tuple[str, str]]:
    """(text, label) for the bulleted entries under the mapped section headings of an RST changelog."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[tuple[str, str]] = []
    label: str | None = None
    current: list[str] = []

    def flush() -> None:
        if label and current:
            text = clean(" ".join(current))
            if len(text.split()) >= 3:
                out.append((text, "security" if SECURITY_ID.search(" ".join(current)) else label))
        current.clear()

    for i, line in enumerate(lines):
        underline = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"[-=~^]{3,}", underline.strip()):
            flush()
            label = sections.get(line.strip())
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


def advisories(root: Path) -> list[tuple[str, str]]:
    """Every safety-db advisory text, labelled security."""
    data = json.loads((root / "data" / "insecure_full.json").read_text(encoding="utf-8"))
    texts = [clean(item["advisory"]) for key, items in data.items() if key != "$meta" for item in items]
    return [(t, "security") for t in texts if len(t.split()) >= 4]


def build(roots: dict[str, Path]) -> list[dict[str, str]]:
    """Label, deduplicate, balance and split the entries."""
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    seen: set[str] = set()
    sources: list[tuple[str, list[tuple[str, str]]]] = [
        (name, changelog_entries(roots[name] / CHANGELOGS[name], SECTIONS[name])) for name in SECTIONS
    ]
    sources.append(("safety-db", advisories(roots["safety-db"])))
    for name, entries in sources:
        for text, label in entries:
            if text.lower() not in seen:
                seen.add(text.lower())
                by_label[label].append({"text": text, "label": label, "source": f"{name}=={PACKAGES[name]}"})
    rng = random.Random(0)
    cap = min(PER_LABEL, *(len(items) for items in by_label.values()))
    rows = []
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        for i, item in enumerate(items[:cap]):
            rows.append({**item, "split": "dev" if i % 3 == 0 else "heldout"})
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = build(download(Path(tmp)))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row["label"]] += 1
    print(f"{len(rows)} items -> {OUT}: {dict(counts)}")


if __name__ == "__main__":
    main()
