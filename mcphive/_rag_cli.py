"""RAG helpers for the CLI's ``ingest`` and ``search`` commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mcphive.errors import UsageError
from mcphive.settings import Settings

__all__ = ["ingest_path", "search_store"]


def ingest_path(settings: Settings, path: Path, *, show_progress: bool | None = None) -> Any:
    """Ingest a file or folder into the store ``settings`` name (a chroma server or ``settings.rag_dir``).

    Args:
        settings: where the store is.
        path: a file or folder.
        show_progress: draw a progress bar on stderr; ``None``: only when stderr is a terminal.
    """
    from mcphive.rag import DocumentStore, ingest

    if not path.exists():
        raise UsageError(f"{path} does not exist; pass a file or folder to ingest")
    store = DocumentStore.from_settings(settings)
    chars, overlap = settings.rag_chunk_chars, settings.rag_chunk_overlap_lines
    try:
        if not (sys.stderr.isatty() if show_progress is None else show_progress):
            return ingest(store, path, max_chars=chars, overlap_lines=overlap)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (
            TextColumn("ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}", markup=False),  # a path, never markup
        )
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("", total=None)

            def advance(done: int, total: int, current: str) -> None:
                bar.update(task, completed=done, total=total, description=current[-60:])

            return ingest(store, path, max_chars=chars, overlap_lines=overlap, progress=advance)
    finally:
        store.close()


def search_store(settings: Settings, query: str, k: int) -> list[Any]:
    """Hybrid search over the store; empty when nothing was ingested yet."""
    from mcphive.rag import DocumentStore

    if settings.rag_chroma_url is None and not settings.rag_dir.exists():
        return []
    store = DocumentStore.from_settings(settings)
    try:
        return list(store.search(query, k=k))
    finally:
        store.close()
