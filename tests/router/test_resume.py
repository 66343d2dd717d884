"""Resume from a checkpoint: a task whose worker process was killed midway continues in another worker
from its last completed step — the survey, the model's earlier choices and the write are not done again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from mcphive import Hive, Settings, TaskResult, TaskStatus
from mcphive.inference.testing import ScriptedModel
from mcphive.router.queue_sql import DurableQueue

WORKER = str(Path(__file__).with_name("_scripted_worker.py"))


def spawn(mode: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, WORKER, mode, str(log)], env=env, stderr=subprocess.DEVNULL)


def checkpointed(database: Path, threads: list[str]) -> int:
    """How many checkpoints the SQLite saver holds for ``threads``."""
    with closing(sqlite3.connect(database)) as db:
        marks = ",".join("?" * len(threads))
        return int(db.execute(f"SELECT count(*) FROM checkpoints WHERE thread_id IN ({marks})", threads).fetchone()[0])


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def kill_midway_then_resume(
    front_settings: Settings,
    env: dict[str, str],
    tmp_path: Path,
    *,
    mode: str,
    text: str,
    agent: str | None,
    workspace: Path,
    stalled: Callable[[str], bool],
    then: Callable[[str, TaskResult], Awaitable[None]] | None = None,
) -> tuple[str, TaskResult]:
    """Submit ``text``; a worker in ``mode`` runs it until a line of its log (tmp_path/first.log) is ``stalled``
    and is killed there, holding the lease; a second worker (tmp_path/second.log) takes it over to the end.
    ``then`` runs while the second worker still lives. Returns the task's id and result."""
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = spawn(mode, first_log, env)
    second: subprocess.Popen[bytes] | None = None
    try:
        async with Hive.open(front_settings, model=ScriptedModel([])) as front:
            handle = await front.submit(text, workspace=workspace, agent=agent)
            with anyio.fail_after(180):
                while not any(stalled(line) for line in lines(first_log)):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            first.send_signal(signal.SIGKILL)  # dies holding the lease, mid-task
            first.wait()
            second = spawn("go", second_log, env)
            with anyio.fail_after(300):
                result = await handle.wait()
            if then is not None:
                await then(handle.id, result)
    finally:
        first.kill()
        if second is not None:
            second.kill()
            second.wait()
    return handle.id, result


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_task_whose_worker_was_killed_resumes_from_its_last_completed_step(
    settings: Settings, sample_workspace: Path, tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    (sample_workspace / "counter.txt").write_text("count\n")
    data_dir = tmp_path / "data"
    # PostgreSQL: the queue, the ledger and the checkpoints all live in the one database every host shares.
    url = request.getfixturevalue("fresh_pg_url") if backend == "postgres" else None
    env = {**os.environ, "MCPHIVE_DATA_DIR": str(data_dir), "MCPHIVE_QUEUE": backend,
           "MCPHIVE_QUEUE_LEASE_S": "3", "MCPHIVE_QUEUE_POLL_S": "0.1"}  # fmt: skip
    if url is not None:
        env["MCPHIVE_QUEUE_URL"] = url
    front_settings = settings.model_copy(update={"queue": backend, "queue_url": url, "queue_poll_s": 0.05,
                                                 "workers": 0, "data_dir": data_dir})  # fmt: skip
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    # The first worker's model hangs right after the write: that line in its log is the signal.
    task_id, result = await kill_midway_then_resume(
        front_settings, env, tmp_path, mode="stall", text="mark the counter", agent="code",
        workspace=sample_workspace, stalled=lambda line: "after-write" in line,
    )  # fmt: skip
    queue = DurableQueue.open(front_settings.queue_database_url)
    try:
        entry = await queue.entry(task_id)
    finally:
        queue.close()
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert entry is not None and entry.state == "done" and entry.attempts == 2
    assert lines(first_log) == ["required before-write", "required after-write"]
    # The second worker starts at the choice after the write: no survey, no first choice, no second write.
    assert lines(second_log) == ["required after-write", "none after-write"]
    assert (sample_workspace / "counter.txt").read_text() == "count +\n"
    assert [c.tool for c in result.tool_calls] == ["ruff_check", "replace_block"]
    assert result.answer == "done"
    # The checkpoints were where the queue is: nothing of them in the data folder with PostgreSQL.
    assert (data_dir / "checkpoints.db").exists() is (backend == "sqlite")


@pytest.mark.anyio
async def test_a_plan_whose_worker_was_killed_does_not_run_its_finished_step_again(
    settings: Settings, sample_workspace: Path, tmp_path: Path
) -> None:
    """Each step of a plan is checkpointed under an id derived from the task's: a plan that runs again after its
    worker died finds its finished step done (no model call, no second write) and runs the rest."""
    (sample_workspace / "counter.txt").write_text("count\n")
    data_dir = tmp_path / "data"
    env = {**os.environ, "MCPHIVE_DATA_DIR": str(data_dir), "MCPHIVE_QUEUE": "sqlite",
           "MCPHIVE_QUEUE_LEASE_S": "3", "MCPHIVE_QUEUE_POLL_S": "0.1"}  # fmt: skip
    front_settings = settings.model_copy(update={"queue": "sqlite", "queue_poll_s": 0.05, "workers": 0,
                                                 "data_dir": data_dir})  # fmt: skip
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    async def checkpoints_deleted(task_id: str, result: TaskResult) -> None:
        threads = [task_id, *(sub.task_id for sub in result.subtasks)]
        with anyio.fail_after(60):  # the worker deletes the checkpoints once it has finished the task
            while checkpointed(data_dir / "checkpoints.db", threads):  # noqa: ASYNC110
                await anyio.sleep(0.05)

    # The first worker dies in the plan's second step.
    _task_id, result = await kill_midway_then_resume(
        front_settings, env, tmp_path, mode="stall-docs", text="fix the counter, then document it", agent=None,
        workspace=sample_workspace, stalled=lambda line: line.startswith("docs "), then=checkpoints_deleted,
    )  # fmt: skip
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert [s.agent for s in result.subtasks] == ["code", "docs"]
    assert lines(first_log)[:3] == ["code required before-write", "code required after-write", "code none after-write"]
    assert not any(line.startswith("code ") for line in lines(second_log))  # the finished step is not run again
    assert (sample_workspace / "counter.txt").read_text() == "count +\n"  # written once
    assert "replace_block" in [c.tool for c in result.subtasks[0].tool_calls]
    assert result.subtasks[1].answer == "documented"
