"""Task checkpoints in SQLite, written on the event loop's own thread.

LangGraph's ``AsyncSqliteSaver`` sends every statement through aiosqlite's thread, several hops per
checkpoint; on a small machine each hop costs more than the write itself (measured: 2.2 ms per
checkpoint through aiosqlite, 0.9 ms through one ``to_thread`` hop, 0.16 ms inline; an agent task
writes about a dozen). :class:`SqliteCheckpoints` is LangGraph's own synchronous ``SqliteSaver`` —
its schema, serialisation and queries — with the async methods the graph calls running inline.

That is sound because every write is one short transaction on a local file in WAL mode with
``synchronous = NORMAL`` (no fsync on commit): the loop is held for a fraction of a millisecond,
or, when another worker process holds the write lock, until its equally short transaction ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

__all__ = ["SqliteCheckpoints", "sqlite_checkpoints"]


class SqliteCheckpoints(SqliteSaver):
    """LangGraph's ``SqliteSaver`` whose async methods run inline on the caller's thread."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for checkpoint in self.list(config, filter=filter, before=before, limit=limit):
            yield checkpoint

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)


@contextmanager
def sqlite_checkpoints(path: Path, serde: SerializerProtocol) -> Iterator[SqliteCheckpoints]:
    """A checkpoint saver on the SQLite file ``path`` (created with its tables when missing), closed on exit.

    A finished task's thread is deleted with ``secure_delete`` on, so its pages (raw tool results) are
    overwritten rather than only freed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False)  # the saver serialises with a lock
    try:
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA secure_delete = ON")
        saver = SqliteCheckpoints(connection, serde=serde)
        saver.setup()  # WAL, and the tables
        yield saver
    finally:
        connection.close()
