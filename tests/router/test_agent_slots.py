"""Per-agent concurrency limits hold for every run of the agent: tasks for it, tasks routed to it, plan steps;
on the in-process queue and on the durable one (real SQLite and PostgreSQL), across workers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcphive import Hive, Settings, TaskStatus
from mcphive.errors import ConfigError
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, tool_call
from mcphive.router.queue_sql import SyncDurableQueue
from mcphive.router.slots import SqlSlots
from mcphive.types import Priority, Task

pytestmark = pytest.mark.anyio

SECRETS = "scan the repository for leaked secrets and API keys ({})"


def routed(text: str = "t", agent: str | None = None) -> Task:
    return Task(text=text, workspace=".", agent=agent)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.seen.append((kind, data))


async def test_a_run_waits_for_the_slot_another_worker_holds_and_takes_it_when_given_back(queue_url: str) -> None:
    queue = SyncDurableQueue.open(queue_url)
    try:
        queue.put_many([routed("a"), routed("b")])
        (a,), (b,) = queue.claim_many("w1", 1), queue.claim_many("w2", 1)
        slots = SqlSlots(queue.engine, {"security": 1}, poll_s=0.05)
        events, order = Events(), []

        async def second() -> None:
            async with slots.hold("security", b.task.id, b.task.id, events):
                order.append("b runs")

        async with anyio.create_task_group() as tg, slots.hold("security", a.task.id, a.task.id, events):
            tg.start_soon(second)
            await anyio.sleep(0.3)  # several polls: b must still be waiting
            assert await slots.running("security") == 1
            order.append("a done")
        assert order == ["a done", "b runs"]
        assert events.seen == [("waiting", {"agent": "security", "limit": 1})]
        assert await slots.running("security") == 0
    finally:
        queue.close()


async def test_the_slot_of_a_run_whose_lease_expired_is_free_and_the_same_run_may_take_it_again(
    queue_url: str,
) -> None:
    past = time.time() - 3600  # leases taken an hour ago have run out
    queue = SyncDurableQueue.open(queue_url, lease_s=30, clock=lambda: past)
    try:
        queue.put_many([routed("dead"), routed("alive")])
        (dead,) = queue.claim_many("w1", 1)
        slots = SqlSlots(queue.engine, {"security": 1}, poll_s=0.05)
        async with slots.hold("security", dead.task.id, dead.task.id, Events()):
            assert await slots.running("security") == 0  # its worker died: nothing keeps the slot
            with anyio.fail_after(5):  # another run takes the slot at once, without waiting for a poll
                async with slots.hold("security", "other", dead.task.id, Events()):
                    pass
    finally:
        queue.close()


async def test_a_claim_skips_tasks_for_an_agent_whose_slots_routed_runs_hold(queue_url: str) -> None:
    queue = SyncDurableQueue.open(queue_url, agent_limits={"security": 1})
    try:
        queue.put(Task(text="routed", workspace=".", priority=Priority.CRITICAL))
        queue.put(routed("named", agent="security"))
        (first,) = queue.claim_many("w1", 1)
        assert first.task.text == "routed"
        slots = SqlSlots(queue.engine, {"security": 1})
        async with slots.hold("security", first.task.id, first.task.id, Events()):  # routed to security
            assert queue.claim_many("w2", 5) == []
        assert [lease.task.text for lease in queue.claim_many("w2", 5)] == ["named"]
    finally:
        queue.close()


class Concurrency:
    """A model that takes a moment per call and records the most runs of each agent inside it at once."""

    def __init__(self) -> None:
        self.prompts: dict[str, str] = {}  # an agent's system prompt -> its name, filled once the hive is open
        self.inside: Counter[str] = Counter()
        self.most: Counter[str] = Counter()

    def model(self) -> FunctionModel:
        async def reply(request: ChatRequest) -> ChatResponse | str:
            if request.tool_choice == "none":
                return "done"
            system = request.messages[0].content or ""
            agent = next(name for prompt, name in self.prompts.items() if system.startswith(prompt))
            self.inside[agent] += 1
            self.most[agent] = max(self.most[agent], self.inside[agent])
            await anyio.sleep(0.3)
            self.inside[agent] -= 1
            return tool_call("finish")

        return FunctionModel(reply)

    @asynccontextmanager
    async def hive(self, settings: Settings, queue: str, limits: dict[str, int]) -> AsyncIterator[Hive]:
        """A hive with three workers on ``queue`` under ``limits``, answered by this model."""
        update = {"queue": queue, "queue_poll_s": 0.05, "workers": 3, "agent_limits": limits}
        async with Hive.open(settings.model_copy(update=update), model=self.model()) as hive:
            self.prompts = {spec.prompt: name for name, spec in hive.specs.items()}
            yield hive


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
async def test_routed_tasks_of_a_limited_agent_run_one_at_a_time(
    settings: Settings, sample_workspace: Path, queue: str
) -> None:
    watch = Concurrency()
    async with watch.hive(settings, queue, {"security": 1}) as hive:
        handles = [await hive.submit(SECRETS.format(i), workspace=sample_workspace) for i in range(3)]
        with anyio.fail_after(120):
            results = [await h.wait() for h in handles]
        kinds = [e.kind for h in handles for e in hive.events_so_far(h.id)]
    assert [(r.status, r.agent) for r in results] == [(TaskStatus.SUCCEEDED, "security")] * 3
    assert watch.most["security"] == 1
    assert "waiting" in kinds


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
async def test_a_plan_step_counts_against_its_agents_limit_like_any_task(
    settings: Settings, sample_workspace: Path, queue: str
) -> None:
    watch = Concurrency()
    async with watch.hive(settings, queue, {"code": 1, "docs": 1}) as hive:
        plan = await hive.submit("add caching to fetch_prices, test it, and document it", workspace=sample_workspace)
        others = [await hive.submit(f"lint the code ({i})", workspace=sample_workspace, agent="code") for i in range(2)]
        others.append(await hive.submit("document the cache", workspace=sample_workspace, agent="docs"))
        with anyio.fail_after(180):
            results = [await h.wait() for h in (plan, *others)]
    assert [r.status for r in results] == [TaskStatus.SUCCEEDED] * 4
    assert [sub.agent for sub in results[0].subtasks] == ["code", "test", "docs"]
    assert (watch.most["code"], watch.most["docs"]) == (1, 1)


async def test_an_agent_limit_naming_an_unknown_agent_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"agent_limits names unknown agent.*'securty'"):
        async with Hive.open(settings.model_copy(update={"agent_limits": {"securty": 1}})):
            pass
