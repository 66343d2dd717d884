"""The SQLite checkpoint saver: inline writes when the file is free, a thread (never the loop) when it is locked."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from mcphive.router.checkpoints import sqlite_checkpoints


def _config(thread: str) -> dict[str, dict[str, str]]:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


@pytest.mark.anyio
async def test_checkpoints_round_trip_and_a_deleted_thread_is_gone(tmp_path: Path) -> None:
    with sqlite_checkpoints(tmp_path / "checkpoints.db", JsonPlusSerializer()) as saver:
        checkpoint = empty_checkpoint()
        saved = await saver.aput(_config("t1"), checkpoint, {"source": "input", "step": -1}, {})  # type: ignore[arg-type]
        await saver.aput_writes(saved, [("steps", ["one"])], task_id="node")

        found = await saver.aget_tuple(saved)
        assert found is not None and found.checkpoint["id"] == checkpoint["id"]
        assert [w[1:] for w in found.pending_writes or []] == [("steps", ["one"])]
        assert [t.checkpoint["id"] async for t in saver.alist(_config("t1"))] == [checkpoint["id"]]

        await saver.adelete_thread("t1")
        assert await saver.aget_tuple(_config("t1")) is None  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_write_while_another_process_holds_the_lock_waits_in_a_thread_not_on_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.db"
    with sqlite_checkpoints(path, JsonPlusSerializer()) as saver:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, other.execute, ["COMMIT"])
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0.01)

        checkpoint = empty_checkpoint()
        async with anyio.create_task_group() as group:
            group.start_soon(tick)
            release.start()
            with anyio.fail_after(10):
                await saver.aput(_config("t2"), checkpoint, {"source": "input", "step": -1}, {})  # type: ignore[arg-type]
            group.cancel_scope.cancel()
        other.close()

        assert ticks >= 10  # the loop kept running while the write waited for the lock
        found = await saver.aget_tuple(_config("t2"))  # type: ignore[arg-type]
        assert found is not None and found.checkpoint["id"] == checkpoint["id"]
