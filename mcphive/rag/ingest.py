"""Walk a folder and put its text and code files into a :class:`~mcphive.rag.store.DocumentStore`.

Files that cannot be read as text (binary, not UTF-8, too large, unknown kind, unreadable) are
reported as skipped with a reason, never fatal. Re-ingesting is incremental: the store keeps each
file's content hash, so unchanged files are skipped, changed ones have their old chunks replaced,
and files deleted from the folder have their chunks removed. A file is recorded only after all its
chunks are stored, so an ingest that was interrupted (Ctrl-C, a chroma server going away) leaves
the store consistent, and running it again finishes the job without redoing finished files.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from mcphive.errors import UsageError
from mcphive.rag.chunking import MAX_CHARS, OVERLAP_LINES, chunk_document
from mcphive.rag.store import DocumentStore, FileRecord

__all__ = ["SKIP_DIRS", "TEXT_SUFFIXES", "IngestReport", "Progress", "SkippedFile", "ingest"]

logger = logging.getLogger(__name__)

SKIP_DIRS = frozenset(
    {".git", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".tox"}
)
"""Folders never ingested: VCS data, environments and caches."""

TEXT_SUFFIXES = frozenset(
    {".md", ".markdown", ".rst", ".txt", ".py", ".pyi", ".js", ".ts", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".sh"}
)
"""File suffixes ingested; the chunker picks the splitter from the suffix."""

_TEXT_NAMES = frozenset({"Dockerfile", "Makefile", "Containerfile"})


class SkippedFile(BaseModel):
    """A file the ingester left out, and why."""

    path: str
    reason: str


class IngestReport(BaseModel):
    """What one :func:`ingest` run did.

    Attributes:
        files: files whose chunks are now stored (read and chunked, or unchanged since the last ingest).
        unchanged: of those, files skipped because their content hash had not changed.
        removed: files gone from the folder since the last ingest, whose chunks were removed.
        chunks: chunks of the stored files (new, already stored, or unchanged).
        added: chunks that were new to the store.
        skipped: files left out, with reasons.
    """

    files: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    added: int = 0
    skipped: list[SkippedFile] = Field(default_factory=list)


Progress = Callable[[int, int, str], None]
"""Called after each file with (files handled, files found, the file's path relative to the ingested folder)."""

_CHUNKER_VERSION = "2"
"""Part of each file's content hash: bump it when chunking changes, so re-ingesting re-chunks every file."""


def _candidates(root: Path) -> list[Path]:
    """Files under root in a stable order, pruning skipped folders without descending into them."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        found.extend(Path(folder) / name for name in sorted(files))
    return found


def _is_ingestible(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES or path.name in _TEXT_NAMES


def _read_bytes(path: Path, max_bytes: int) -> tuple[bytes | None, str]:
    """The file's bytes, or None and the reason it cannot be ingested."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return None, f"larger than {max_bytes} bytes ({size})"
        return path.read_bytes(), ""
    except OSError as e:
        return None, f"unreadable: {e.strerror or e}"


def _decode(data: bytes) -> tuple[str | None, str]:
    """The bytes as text, or None and the reason they are not text."""
    if b"\0" in data:
        return None, "binary (contains NUL bytes)"
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError:
        return None, "not UTF-8 text"


def _digest(data: bytes, max_chars: int, overlap: int = OVERLAP_LINES) -> str:
    """Content hash of a file as it would be chunked (chunker version and size bound included)."""
    return hashlib.sha256(f"{_CHUNKER_VERSION}\0{max_chars}\0{overlap}\0".encode() + data).hexdigest()


def ingest(
    store: DocumentStore,
    path: Path,
    *,
    max_bytes_per_file: int = 1_000_000,
    max_files: int = 5000,
    max_chars: int = MAX_CHARS,
    overlap_lines: int = OVERLAP_LINES,
    progress: Progress | None = None,
) -> IngestReport:
    """Chunk and store every text/code file under ``path`` (or ``path`` itself if it is a file).

    Sources are recorded relative to ``path`` (POSIX form), so results read the same on any machine.
    Unchanged files are skipped; when ``path`` is a folder, files deleted from it since its last
    ingest have their chunks removed. Blocking: async callers should run it with
    ``anyio.to_thread.run_sync``.

    Args:
        store: where the chunks go.
        path: a folder to walk, or a single file.
        max_bytes_per_file: larger files are skipped (with a warning).
        max_files: files beyond this many are skipped (each reported).
        max_chars: chunk size bound, in characters.
        overlap_lines: lines a window of an oversized section shares with the one before it (a sentence
            cut at the border stays findable from both sides).
        progress: called after each file (see :data:`Progress`).

    Raises:
        UsageError: ``path`` does not exist.
        StoreError: the store failed; files finished before the failure stay stored, and a re-run resumes.
    """
    root = Path(path)
    if not root.exists():
        raise UsageError(f"cannot ingest {str(root)!r}: no such file or folder; pass an existing path")
    folder = not root.is_file()
    files = _candidates(root) if folder else [root]
    base = (root if folder else root.parent).resolve()
    records = store.files(str(base))
    report = IngestReport()
    for done, file in enumerate(files, start=1):
        relative = file.relative_to(root if folder else root.parent).as_posix()
        reason = _ingest_file(store, file, relative, str(base), records.get(relative), report, max_bytes_per_file,
                              max_files, max_chars, overlap_lines)  # fmt: skip
        if reason:
            report.skipped.append(SkippedFile(path=relative, reason=reason))
            if not reason.startswith("unsupported"):
                logger.info("skipped %s: %s", relative, reason, extra={"path": relative, "reason": reason})
        if progress is not None:
            progress(done, len(files), relative)
    if folder:
        present = {file.relative_to(root).as_posix() for file in files}
        for source in sorted(set(records) - present):
            store.forget_file(str(base), source)
            report.removed += 1
    logger.info(
        "ingested folder",
        extra={"path": str(root), "files": report.files, "unchanged": report.unchanged, "removed": report.removed,
               "chunks": report.chunks, "skipped": len(report.skipped)},
    )  # fmt: skip
    return report


def _ingest_file(
    store: DocumentStore,
    file: Path,
    relative: str,
    root: str,
    record: FileRecord | None,
    report: IngestReport,
    max_bytes: int,
    max_files: int,
    max_chars: int,
    overlap_lines: int,
) -> str:
    """Store one file's chunks (unless unchanged) and count it in ``report``; the reason it was skipped, or ""."""
    if file.is_symlink() and not file.exists():
        return "a broken symbolic link"
    if not _is_ingestible(file):
        return f"unsupported file kind {file.suffix or file.name!r}"
    if report.files >= max_files:
        return f"over the limit of {max_files} files"
    data, reason = _read_bytes(file, max_bytes)
    if data is None:
        return reason
    digest = _digest(data, max_chars, overlap_lines)
    if record is not None and record.digest == digest:
        report.files += 1
        report.unchanged += 1
        report.chunks += record.chunks
        return ""
    text, reason = _decode(data)
    if text is None:
        return reason
    chunks = chunk_document(text, relative, max_chars=max_chars, overlap=overlap_lines)
    report.added += store.add(chunks)
    store.remove_source(relative, keep=[chunk.id for chunk in chunks])
    # Last: only a file whose chunks are all stored counts as done for the next run.
    store.record_file(FileRecord(root=root, source=relative, digest=digest, chunks=len(chunks)))
    report.files += 1
    report.chunks += len(chunks)
    return ""
