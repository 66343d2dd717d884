"""Another process's SQLite writer, for the tests that check the event loop never waits on a lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio


@dataclass
class Ticks:
    """How often the event loop got to run a 10 ms ticker while the lock was held."""

    count: int = 0


@asynccontextmanager
async def held_write_lock(path: Path, seconds: float = 0.3) -> AsyncIterator[Ticks]:
    """Hold the write lock of the SQLite file ``path`` from another connection for ``seconds``, counting loop ticks."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(seconds, other.execute, ["COMMIT"])
    ticks = Ticks()

    async def tick() -> None:
        while True:
            ticks.count += 1
            await anyio.sleep(0.01)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(tick)
            release.start()
            yield ticks
            group.cancel_scope.cancel()
    finally:
        release.join()
        other.close()
