"""Fixtures for the RAG tests: the real MiniLM embedder, loaded once per test session."""

from __future__ import annotations

import pytest

from mcphive.embeddings import Embedder, get_embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The process-wide embedder with its model loaded (loading costs seconds, so once)."""
    shared = get_embedder()
    shared.embed_one("warm up")
    return shared


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
