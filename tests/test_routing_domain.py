"""The routing domain set: what routing_accuracy scores must be balanced, de-duplicated and unseen."""

from __future__ import annotations

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


def _rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def _package(source: str) -> str:
    """``pypi:urllib3==2.8.0`` -> ``urllib3``; ``npm:@scope/name@1.0`` -> ``@scope/name``; Debian ``name=version``."""
    return re.split(r"==|=(?=[^=]*$)|@(?=[^@/]*$)", source.split(":", 1)[1])[0]


def test_the_held_out_split_is_balanced_and_from_packages_dev_never_uses() -> None:
    rows = _rows()
    held = [r for r in rows if r["split"] == "heldout"]
    counts = Counter(r["label"] for r in held)
    assert set(counts) == set(LABELS) and len(set(counts.values())) == 1 and len(held) >= 300
    dev_packages = {_package(r["source"]) for r in rows if r["split"] == "dev"}
    assert not {_package(r["source"]) for r in held} & dev_packages
    keys = [re.sub(r"\W+", " ", r["text"].lower()).strip() for r in rows]
    assert len(keys) == len(set(keys))  # no text twice, across splits
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
