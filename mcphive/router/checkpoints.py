"""Task checkpoints in SQLite, written on the event loop's own thread when the database is free.

LangGraph's ``AsyncSqliteSaver`` sends every statement through aiosqlite's thread, several hops per
checkpoint; on a small machine each hop costs more than the write itself (measured: 2.2 ms per
checkpoint through aiosqlite, 0.9 ms through one ``to_thread`` hop, 0.16 ms inline; an agent task
writes a handful). :class:`SqliteCheckpoints` is LangGraph's own synchronous ``SqliteSaver`` — its
schema, serialisation and queries — with the async methods the graph calls running inline.

Inline, but never waiting on the loop: its connection has SQLite's busy timeout at zero, so when
another worker process holds the write lock the statement fails at once, having written nothing,
and the operation is run again in a worker thread on a second connection that waits as usual. Each
write is one short transaction on a local file in WAL mode with ``synchronous = NORMAL`` (no fsync
on commit).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from anyio import to_thread
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

__all__ = ["SqliteCheckpoints", "sqlite_checkpoints"]

T = TypeVar("T")
_BUSY_TIMEOUT_S = 30.0


class SqliteCheckpoints(SqliteSaver):
    """LangGraph's ``SqliteSaver`` whose async methods run inline, or in a thread on ``waiting`` when locked.

    Args:
        conn: the inline connection; its busy timeout must be zero.
        serde: the serializer, the same for both connections.
        waiting: a saver on a second connection to the same file, with a busy timeout, for locked moments.
    """

    def __init__(self, conn: sqlite3.Connection, *, serde: SerializerProtocol, waiting: SqliteSaver) -> None:
        super().__init__(conn, serde=serde)
        self._waiting = waiting

    async def _run(self, inline: Callable[[], T], waiting: Callable[[], T]) -> T:
        try:
            return inline()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e):
                raise
        return await to_thread.run_sync(waiting)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._run(lambda: self.get_tuple(config), lambda: self._waiting.get_tuple(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = await self._run(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit)),
            lambda: list(self._waiting.list(config, filter=filter, before=before, limit=limit)),
        )
        for checkpoint in found:
            yield checkpoint

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._run(
            lambda: self.put(config, checkpoint, metadata, new_versions),
            lambda: self._waiting.put(config, checkpoint, metadata, new_versions),
        )

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self._run(
            lambda: self.put_writes(config, writes, task_id, task_path),
            lambda: self._waiting.put_writes(config, writes, task_id, task_path),
        )

    async def adelete_thread(self, thread_id: str) -> None:
        await self._run(lambda: self.delete_thread(thread_id), lambda: self._waiting.delete_thread(thread_id))


def _connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False)  # savers lock around use
    connection.execute("PRAGMA synchronous = NORMAL")
    # A finished task's thread is deleted; its pages (raw tool results) are overwritten, not only freed.
    connection.execute("PRAGMA secure_delete = ON")
    return connection


@contextmanager
def sqlite_checkpoints(path: Path, serde: SerializerProtocol) -> Iterator[SqliteCheckpoints]:
    """A checkpoint saver on the SQLite file ``path`` (created with its tables when missing), closed on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    waiting_connection = _connect(path, _BUSY_TIMEOUT_S)
    inline_connection = _connect(path, 0.0)
    try:
        waiting = SqliteSaver(waiting_connection, serde=serde)
        waiting.setup()  # WAL, and the tables; may wait for another process creating them too
        saver = SqliteCheckpoints(inline_connection, serde=serde, waiting=waiting)
        saver.is_setup = True
        yield saver
    finally:
        inline_connection.close()
        waiting_connection.close()
