"""Fixtures for the memory tests: a real SQLite database per test under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcphive.memory import EpisodicMemory


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'mcphive.db'}"


@pytest.fixture
def memory(db_url: str) -> Iterator[EpisodicMemory]:
    opened = EpisodicMemory.open(db_url)
    yield opened
    opened.close()
