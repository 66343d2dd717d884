"""RAG helpers for the CLI's ``ingest`` and ``search`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcphive.errors import UsageError
from mcphive.settings import Settings

__all__ = ["ingest_path", "search_store"]


def ingest_path(settings: Settings, path: Path) -> Any:
    """Ingest a file or folder into the store under ``settings.rag_dir``."""
    from mcphive.rag import DocumentStore, ingest

    if not path.exists():
        raise UsageError(f"{path} does not exist; pass a file or folder to ingest")
    return ingest(DocumentStore(settings.rag_dir), path)


def search_store(settings: Settings, query: str, k: int) -> list[Any]:
    """Hybrid search over the store; empty when nothing was ingested yet."""
    from mcphive.rag import DocumentStore

    if not settings.rag_dir.exists():
        return []
    return list(DocumentStore(settings.rag_dir).search(query, k=k))
