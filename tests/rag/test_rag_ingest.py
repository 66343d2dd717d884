"""Ingesting a folder: the right files, the right skips, idempotent re-runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcphive.embeddings import Embedder
from mcphive.errors import UsageError
from mcphive.rag import DocumentStore, ingest

from .corpus import write_corpus


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> DocumentStore:
    return DocumentStore(tmp_path / "db", embedder)


def test_ingest_stores_text_files_and_reports_binary_non_utf8_and_unsupported_ones(
    tmp_path: Path, store: DocumentStore
) -> None:
    report = ingest(store, write_corpus(tmp_path / "ws"))
    assert report.files == 3
    assert report.chunks == report.added == store.count() > 3
    reasons = {skip.path: skip.reason for skip in report.skipped}
    assert set(reasons) == {"data.txt", "latin1.md", "logo.png"}
    assert "binary" in reasons["data.txt"]
    assert "UTF-8" in reasons["latin1.md"]
    assert "unsupported" in reasons["logo.png"]
    assert store.sources() == ["NOTES.txt", "docs/guide.md", "pkg/widgets.py"]


def test_reingesting_the_same_folder_adds_nothing(tmp_path: Path, store: DocumentStore) -> None:
    root = write_corpus(tmp_path / "ws")
    first = ingest(store, root)
    count = store.count()
    second = ingest(store, root)
    assert second.added == 0
    assert second.chunks == first.chunks
    assert store.count() == count


def test_reingesting_a_changed_file_replaces_its_old_chunks(tmp_path: Path, store: DocumentStore) -> None:
    root = write_corpus(tmp_path / "ws")
    ingest(store, root)
    before = store.count()
    (root / "NOTES.txt").write_text("Release notes.\n\nVersion 3 removes the legacy importer.\n", encoding="utf-8")
    ingest(store, root)
    assert store.count() == before
    texts = [hit.text for hit in store.search("legacy importer version", k=10)]
    assert any("Version 3" in text for text in texts)
    assert not any("Version 2" in text for text in texts)


def test_oversized_files_are_skipped(tmp_path: Path, store: DocumentStore) -> None:
    report = ingest(store, write_corpus(tmp_path / "ws"), max_bytes_per_file=200)
    reasons = {skip.path: skip.reason for skip in report.skipped}
    assert "larger than 200 bytes" in reasons["docs/guide.md"]
    assert "docs/guide.md" not in store.sources()


def test_files_past_the_file_limit_are_skipped(tmp_path: Path, store: DocumentStore) -> None:
    report = ingest(store, write_corpus(tmp_path / "ws"), max_files=1)
    over = [skip.path for skip in report.skipped if "over the limit of 1 files" in skip.reason]
    assert report.files == 1
    assert set(over) == {"data.txt", "latin1.md", "docs/guide.md", "pkg/widgets.py"}  # not even read
    assert len(store.sources()) == 1


def test_a_single_file_can_be_ingested(tmp_path: Path, store: DocumentStore) -> None:
    root = write_corpus(tmp_path / "ws")
    report = ingest(store, root / "pkg" / "widgets.py")
    assert report.files == 1
    assert store.sources() == ["widgets.py"]


def test_ingesting_a_missing_path_is_a_usage_error(tmp_path: Path, store: DocumentStore) -> None:
    with pytest.raises(UsageError, match="no such file or folder"):
        ingest(store, tmp_path / "nope")
