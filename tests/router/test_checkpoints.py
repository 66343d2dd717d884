"""The SQLite checkpoint saver: inline writes when the file is free, a thread (never the loop) when it is locked."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from _locks import held_write_lock
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
        checkpoint = empty_checkpoint()
        async with held_write_lock(path) as ticks:
            with anyio.fail_after(10):
                await saver.aput(_config("t2"), checkpoint, {"source": "input", "step": -1}, {})  # type: ignore[arg-type]

        assert ticks.count >= 10  # the loop kept running while the write waited for the lock
        found = await saver.aget_tuple(_config("t2"))  # type: ignore[arg-type]
        assert found is not None and found.checkpoint["id"] == checkpoint["id"]
