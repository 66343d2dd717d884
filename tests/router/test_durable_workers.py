"""Many workers, one durable queue: hives in other processes run what this one submits, and a task whose
worker dies is run again by another once its lease expires."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from _writers import finisher_model

from mcphive import Hive, Settings, TaskStatus
from mcphive.inference.testing import ScriptedModel
from mcphive.router.queue_sql import DurableQueue

MCPHIVE = str(Path(sys.executable).parent / "mcphive")


def durable(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"queue": "sqlite", "queue_poll_s": 0.05, **update})


@pytest.mark.anyio
async def test_a_submit_only_hive_gets_results_from_another_hives_workers(
    settings: Settings, sample_workspace: Path
) -> None:
    model = finisher_model()
    async with (
        Hive.open(durable(settings, workers=2), model=model),
        Hive.open(durable(settings, workers=0), model=ScriptedModel([])) as front,
    ):
        handles = [
            await front.submit(f"lint the code ({i})", workspace=sample_workspace, agent="code") for i in range(4)
        ]
        with anyio.fail_after(120):
            results = [await h.wait() for h in handles]
    assert [r.status for r in results] == [TaskStatus.SUCCEEDED] * 4
    assert all(r.answer == "done" for r in results)


@pytest.mark.anyio
async def test_a_task_put_in_this_process_wakes_its_idle_workers_without_waiting_for_a_poll(
    settings: Settings, sample_workspace: Path
) -> None:
    model = finisher_model()
    async with Hive.open(durable(settings, workers=1, queue_poll_s=600), model=model) as hive:
        await anyio.sleep(0.2)  # the worker has made its first, empty claim and waits for the next poll
        with anyio.fail_after(60):  # far less than the poll interval: only the put's nudge can wake it
            result = await hive.run("lint the code", workspace=sample_workspace, agent="code")
    assert result.status is TaskStatus.SUCCEEDED


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MCPHIVE_DATA_DIR": str(tmp_path / "data"), "MCPHIVE_QUEUE": "sqlite",
            "MCPHIVE_QUEUE_LEASE_S": "3", "MCPHIVE_QUEUE_POLL_S": "0.1", "MCPHIVE_MAX_MODEL_STEPS": "0"}  # fmt: skip


@pytest.fixture
def first_worker(worker_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen([MCPHIVE, "worker", "-c", "1"], env=worker_env, stderr=subprocess.PIPE, text=True) as proc:
        yield proc
        proc.kill()


@pytest.mark.anyio
async def test_a_task_whose_worker_was_killed_is_run_by_another_worker(
    settings: Settings, sample_workspace: Path, worker_env: dict[str, str], first_worker: subprocess.Popen[str]
) -> None:
    front_settings = durable(settings, workers=0, data_dir=Path(worker_env["MCPHIVE_DATA_DIR"]))
    async with Hive.open(front_settings, model=ScriptedModel([])) as front:
        handle = await front.submit("scan for hard-coded secrets", workspace=sample_workspace, agent="security")
        queue = DurableQueue.open(front_settings.queue_database_url)
        try:
            with anyio.fail_after(120):
                # Another process holds the lease: its row in the queue is the only signal there is to poll.
                while (entry := await queue.entry(handle.id)) is None or entry.state != "claimed":  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            first_worker.send_signal(signal.SIGKILL)  # dies holding the lease
            async with await anyio.open_process([MCPHIVE, "worker", "-c", "1"], env=worker_env) as second:
                try:
                    with anyio.fail_after(300):
                        result = await handle.wait()
                    entry = await queue.entry(handle.id)
                finally:
                    second.kill()
        finally:
            queue.close()
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert entry is not None and entry.state == "done" and entry.attempts == 2
    assert [c.tool for c in result.tool_calls] == ["secret_scan", "bandit_scan", "mcp_tool_audit"]
