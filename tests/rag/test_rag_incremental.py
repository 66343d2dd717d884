"""Incremental re-ingest: unchanged files skipped by content hash, deleted files removed, interrupted runs resumed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcphive.embeddings import Embedder
from mcphive.rag import DocumentStore, ingest

from .corpus import write_corpus


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> DocumentStore:
    return DocumentStore(tmp_path / "db", embedder)


def test_unchanged_files_are_skipped_and_a_changed_one_is_redone(tmp_path: Path, store: DocumentStore) -> None:
    root = write_corpus(tmp_path / "ws")
    first = ingest(store, root)
    second = ingest(store, root)
    assert (second.files, second.unchanged, second.added, second.chunks) == (3, 3, 0, first.chunks)
    (root / "NOTES.txt").write_text("Release notes.\n\nVersion 3 drops the legacy importer.\n", encoding="utf-8")
    third = ingest(store, root)
    assert (third.files, third.unchanged, third.added) == (3, 2, 1)
    assert store.count() == first.chunks


def test_a_deleted_file_leaves_both_the_vector_store_and_the_bm25_index(
    tmp_path: Path, store: DocumentStore, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "ws")
    ingest(store, root)
    hit = store.search("zqx_frobnicate_v7", k=1)[0]
    assert (hit.source, hit.bm25_rank) == ("pkg/widgets.py", 1)  # BM25 index built and holding the file

    (root / "pkg" / "widgets.py").unlink()
    report = ingest(store, root)
    assert report.removed == 1 and report.files == 2

    hits = store.search("zqx_frobnicate_v7 render_widget resize_widget", k=20)
    assert hits and all(h.source != "pkg/widgets.py" for h in hits)  # gone from BM25 and from the vectors
    assert store.search("widget", k=5, where={"source": "pkg/widgets.py"}) == []  # the dense index has none
    reopened = DocumentStore(tmp_path / "db", embedder)  # and on disk, for a fresh reader
    assert reopened.sources() == ["NOTES.txt", "docs/guide.md"]
    assert ingest(reopened, root).removed == 0  # its record went with it


def test_ingesting_one_file_never_removes_its_neighbours(tmp_path: Path, store: DocumentStore) -> None:
    root = write_corpus(tmp_path / "ws")
    ingest(store, root / "docs")
    ingest(store, root / "docs" / "guide.md")
    assert store.sources() == ["guide.md"]
    (root / "docs" / "extra.md").write_text("# Extra\n\nMore words.\n", encoding="utf-8")
    report = ingest(store, root / "docs" / "extra.md")
    assert report.removed == 0
    assert store.sources() == ["extra.md", "guide.md"]


def test_an_interrupted_ingest_leaves_finished_files_and_a_rerun_completes_it(
    tmp_path: Path, store: DocumentStore, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "ws")
    handled: list[str] = []

    def interrupt_after_the_guide(done: int, total: int, path: str) -> None:
        handled.append(path)
        assert done == len(handled) and total == 6  # 3 text files and 3 that are skipped
        if path == "docs/guide.md":
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of `mcphive ingest`

    with pytest.raises(KeyboardInterrupt):
        ingest(store, root, progress=interrupt_after_the_guide)
    assert store.sources() == ["NOTES.txt", "docs/guide.md"]

    rerun = ingest(store, root)
    assert (rerun.files, rerun.unchanged) == (3, 2)
    assert store.sources() == ["NOTES.txt", "docs/guide.md", "pkg/widgets.py"]
    reference = DocumentStore(tmp_path / "reference", embedder)
    assert ingest(reference, root).chunks == store.count() == reference.count()


def test_a_file_that_vanishes_during_the_walk_is_skipped_not_fatal(tmp_path: Path, store: DocumentStore) -> None:
    root = write_corpus(tmp_path / "ws")

    def delete_widgets_early(done: int, total: int, path: str) -> None:
        if path == "NOTES.txt":
            (root / "pkg" / "widgets.py").unlink()  # listed by the walk, gone when its turn comes

    report = ingest(store, root, progress=delete_widgets_early)
    reasons = {skip.path: skip.reason for skip in report.skipped}
    assert "unreadable" in reasons["pkg/widgets.py"] and "No such file" in reasons["pkg/widgets.py"]
    assert report.files == 2
