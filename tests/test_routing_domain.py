"""The routing domain set: what routing_accuracy scores must be balanced, de-duplicated and unseen."""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from collections import Counter

import pytest

from tests._benchmarks import BENCHMARKS, load_benchmark

DATA = BENCHMARKS / "data" / "routing_domain.jsonl"
LABELS = ("code", "docs", "infra", "ops", "security", "test")


@pytest.fixture(scope="module")
def builder():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCHMARKS))  # the builder imports its collectors as routing_domain_sources
    try:
        yield load_benchmark("build_routing_domain")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def sources(builder):  # type: ignore[no-untyped-def]
    """The collectors' modules, as the builder imported them."""
    return sys.modules["routing_domain_sources"]


def _rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def _package(source: str) -> str:
    """``pypi:urllib3==2.8.0`` -> ``urllib3``; ``npm:@scope/name@1.0`` -> ``@scope/name``; Debian ``name=version``."""
    return re.split(r"==|=(?=[^=]*$)|@(?=[^@/]*$)", source.split(":", 1)[1])[0]


def test_the_held_out_split_is_balanced_and_from_packages_dev_never_uses(builder) -> None:  # type: ignore[no-untyped-def]
    rows = _rows()
    held = [r for r in rows if r["split"] == "heldout"]
    counts = Counter(r["label"] for r in held)
    assert set(counts) == set(LABELS) and len(set(counts.values())) == 1 and len(held) >= 300
    dev_packages = {_package(r["source"]) for r in rows if r["split"] == "dev"}
    assert not {_package(r["source"]) for r in held} & dev_packages
    keys = [builder._key(r["text"]) for r in rows]
    assert len(keys) == len(set(keys))  # no text twice, across splits (as the builder compares texts)
    assert all(r["text"] and r["source"] and r["file"] and r["section"] for r in rows)


def test_held_out_items_are_drawn_evenly_across_sources_and_never_repeat_earlier_rows(builder) -> None:  # type: ignore[no-untyped-def]
    entries = [
        ("pypi:big==1", [(f"big fix number {i}", "code", "Bug Fixes", "CHANGES") for i in range(20)]),
        ("npm:small@1", [(f"small fix number {i}", "code", "Bug Fixes", "CHANGELOG.md") for i in range(2)]),
        ("npm:dup@1", [("an entry seen before", "code", "Features", "CHANGELOG.md")]),
    ]
    entries += [
        (f"pypi:{label}==1", [(f"{label} entry {i}", label, "s", "f") for i in range(6)]) for label in LABELS[1:]
    ]
    rows = builder.balanced_heldout(entries, {"an entry seen before"}, random.Random(0))
    assert Counter(r["label"] for r in rows) == dict.fromkeys(LABELS, 6)
    code = Counter(r["source"] for r in rows if r["label"] == "code")
    assert code == {"pypi:big==1": 4, "npm:small@1": 2}  # the small source gives all it has, not a sixth of it
    assert all(r["split"] == "heldout" for r in rows)


def test_package_names_are_read_from_every_registry_form() -> None:
    assert _package("pypi:urllib3==2.8.0") == "urllib3"
    assert _package("npm:@google-cloud/storage@5.3.0") == "@google-cloud/storage"
    assert _package("debian:imagemagick-6.q16=8:6.9.11.60+dfsg-1.6+deb12u15") == "imagemagick-6.q16"


CONVENTIONAL = """# Changelog

## [2.1.0](https://example.org/compare/v2.0.0...v2.1.0) (2024-01-02)

### Features

* **player:** add a picture-in-picture button ([abc1234](https://example.org/c/abc1234)), closes [#12](https://x/12)

### Bug Fixes

* guard against CVE-2023-12345 in the URL parser ([def5678](https://example.org/c/def5678))

### Documentation

* **readme:** describe the plugin options ([0123abc](https://example.org/c/0123abc))

### Tests

* cover the seek bar with unit cases ([4567def](https://example.org/c/4567def))

### Chores

* release 2.1.0 ([89abcde](https://example.org/c/89abcde))
"""


def test_a_conventional_changelog_is_labelled_by_its_sections_and_stripped_of_markup(sources, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "CHANGELOG.md"
    path.write_text(CONVENTIONAL)
    items = [(text, label) for text, label, _, _ in sources.changelogs.parse(path, "md", sources.changelogs.CC)]
    assert items == [
        ("add a picture-in-picture button", "code"),
        ("guard against CVE-2023-12345 in the URL parser", "security"),  # an id makes it security, whatever the section
        ("describe the plugin options", "docs"),
        ("cover the seek bar with unit cases", "test"),
    ]  # "Chores" maps to no agent and is left out


def test_per_line_commit_types_label_entries_without_sections(sources, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "CHANGELOG.md"
    path.write_text("- fix(resolve): keep symlinked paths\n- ci: run on Node 20\n- chore: tidy up the tree\n")
    items = sources.changelogs.parse(path, "cctype", sources.changelogs.ROLLUP_TYPES)
    assert [(text, label) for text, label, _, _ in items] == [
        ("keep symlinked paths", "code"),
        ("run on Node 20", "infra"),
    ]


def test_alert_rules_keep_alerts_with_summaries_and_drop_templates_and_recording_rules(sources, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "rules.yml").write_text(
        """groups:
- name: disk
  rules:
  - record: job:disk_free:ratio
    expr: node_filesystem_free_bytes / node_filesystem_size_bytes
  - alert: DiskAlmostFull
    annotations:
      summary: "Disk {{ $labels.device }} on {{ $labels.instance }} is almost full ({{ $value }}%)"
"""
    )
    rows = sources.alerts.prometheus_rules(tmp_path, "rules.yml")
    assert rows == [("DiskAlmostFull: Disk on is almost full", "ops", "disk", "rules.yml")]


def test_debian_changelog_entries_naming_a_cve_are_kept_without_patch_prefixes(sources, tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "usr" / "share" / "doc" / "libfoo"
    doc.mkdir(parents=True)
    changelog = """libfoo (1.2-3) bookworm-security; urgency=medium

  * debian/patches/CVE-2024-0001.patch: fix a heap overflow in the parser (CVE-2024-0001)
  * Rebuild with the new toolchain

 -- Maintainer <m@example.org>  Mon, 01 Jan 2024 00:00:00 +0000
"""
    (doc / "changelog.Debian.gz").write_bytes(gzip.compress(changelog.encode()))
    rows = sources.advisories.debian_changelog(tmp_path)
    assert [(text, label) for text, label, _, _ in rows] == [
        ("fix a heap overflow in the parser (CVE-2024-0001)", "security")
    ]
