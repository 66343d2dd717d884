"""Walk a folder and put its text and code files into a :class:`~mcphive.rag.store.DocumentStore`.

Files that cannot be read as text (binary, not UTF-8, too large, unknown kind) are reported as
skipped with a reason, never fatal. Re-ingesting is idempotent; a file whose content changed
has its old chunks replaced.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import BaseModel, Field

from mcphive.errors import UsageError
from mcphive.rag.chunking import chunk_document
from mcphive.rag.store import DocumentStore

__all__ = ["SKIP_DIRS", "TEXT_SUFFIXES", "IngestReport", "SkippedFile", "ingest"]

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
        files: files read and chunked.
        chunks: chunks produced from them (new or already stored).
        added: chunks that were new to the store.
        skipped: files left out, with reasons.
    """

    files: int = 0
    chunks: int = 0
    added: int = 0
    skipped: list[SkippedFile] = Field(default_factory=list)


def _candidates(root: Path) -> list[Path]:
    """Files under root in a stable order, pruning skipped folders without descending into them."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        found.extend(Path(folder) / name for name in sorted(files))
    return found


def _is_ingestible(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES or path.name in _TEXT_NAMES


def _read_text(path: Path, max_bytes: int) -> tuple[str | None, str]:
    """The file's text, or None and the reason it cannot be ingested."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return None, f"larger than {max_bytes} bytes ({size})"
        data = path.read_bytes()
    except OSError as e:
        return None, f"unreadable: {e.strerror or e}"
    if b"\0" in data:
        return None, "binary (contains NUL bytes)"
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError:
        return None, "not UTF-8 text"


def ingest(
    store: DocumentStore, path: Path, *, max_bytes_per_file: int = 1_000_000, max_files: int = 5000
) -> IngestReport:
    """Chunk and store every text/code file under ``path`` (or ``path`` itself if it is a file).

    Sources are recorded relative to ``path`` (POSIX form), so results read the same on any machine.
    Blocking: async callers should run it with ``anyio.to_thread.run_sync``.

    Args:
        store: where the chunks go.
        path: a folder to walk, or a single file.
        max_bytes_per_file: larger files are skipped.
        max_files: files beyond this many are skipped (each reported).

    Raises:
        UsageError: ``path`` does not exist.
        StoreError: the store failed.
    """
    root = Path(path)
    if not root.exists():
        raise UsageError(f"cannot ingest {str(root)!r}: no such file or folder; pass an existing path")
    files = [root] if root.is_file() else _candidates(root)
    base = root.parent if root.is_file() else root
    report = IngestReport()
    for file in files:
        relative = file.relative_to(base).as_posix()
        if not _is_ingestible(file):
            report.skipped.append(
                SkippedFile(path=relative, reason=f"unsupported file kind {file.suffix or file.name!r}")
            )
            continue
        if report.files >= max_files:
            report.skipped.append(SkippedFile(path=relative, reason=f"over the limit of {max_files} files"))
            continue
        text, reason = _read_text(file, max_bytes_per_file)
        if text is None:
            report.skipped.append(SkippedFile(path=relative, reason=reason))
            continue
        chunks = chunk_document(text, relative)
        report.added += store.add(chunks)
        store.remove_source(relative, keep=[chunk.id for chunk in chunks])
        report.files += 1
        report.chunks += len(chunks)
    logger.info(
        "ingested folder",
        extra={"path": str(root), "files": report.files, "chunks": report.chunks, "skipped": len(report.skipped)},
    )
    return report
