"""Transient model failures are retried with backoff (honouring Retry-After); others fail at once."""

from pathlib import Path

import pytest

from mcphive import Hive, ModelUnavailable, Settings, TaskStatus
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, tool_call

pytestmark = pytest.mark.anyio


def flaky(failures: list[ModelUnavailable]) -> FunctionModel:
    def reply(request: ChatRequest) -> ChatResponse | str:
        if failures:
            raise failures.pop(0)
        return "done" if request.tool_choice == "none" else tool_call("finish")

    return FunctionModel(reply)


async def test_a_transient_failure_is_retried_after_the_servers_retry_after(
    settings: Settings, sample_workspace: Path
) -> None:
    busy = ModelUnavailable("HTTP 429", transient=True, retry_after=0.01)
    async with Hive.open(settings, model=flaky([busy, busy])) as hive:
        handle = await hive.submit("lint", workspace=sample_workspace, agent="code")
        result = await handle.wait()
        retries = [e.data for e in hive.events_so_far(handle.id) if e.data.get("purpose") == "retry"]
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert [(r["attempt"], r["delay_s"]) for r in retries] == [(1, 0.01), (2, 0.01)]


async def test_a_lasting_failure_gives_up_after_the_retries(settings: Settings, sample_workspace: Path) -> None:
    down = [ModelUnavailable("server down", transient=True, retry_after=0.0) for _ in range(3)]
    async with Hive.open(settings, model=flaky(down)) as hive:
        result = await hive.run("lint", workspace=sample_workspace, agent="code")
    assert result.status is TaskStatus.FAILED and result.error == "server down"
    assert [c.tool for c in result.tool_calls] == ["ruff_check"]  # the survey's work is kept


async def test_a_permanent_failure_is_not_retried(settings: Settings, sample_workspace: Path) -> None:
    refused = ModelUnavailable("HTTP 401: bad key")
    remaining = [refused, ModelUnavailable("should never be reached")]
    async with Hive.open(settings, model=flaky(remaining)) as hive:
        result = await hive.run("lint", workspace=sample_workspace, agent="code")
    assert result.error == "HTTP 401: bad key" and len(remaining) == 1
