"""Fair share between tenants: the in-process queue and the durable one on SQLite and PostgreSQL.

Tenants with tasks of equal effective rank (class after aging) and deadline take turns; the
priority class, aging and deadlines still decide first.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mcphive.router.prioritizer import Prioritizer
from mcphive.router.queue_sql import SyncDurableQueue
from mcphive.router.queues import LocalQueue, SqlQueue, open_queue
from mcphive.settings import Settings
from mcphive.types import Principal, Priority, Task


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def task(tenant: str, text: str, priority: str = "normal") -> Task:
    return Task(text=text, workspace=".", priority=Priority(priority), principal=Principal(tenant=tenant))


class Queue:
    """The in-process prioritizer and the durable queue behind one put / next(completing it) / put_with_deadline."""

    def __init__(self, backend: str, url: str, clock: Clock, fair_share: bool) -> None:
        self.clock = clock
        self.local = Prioritizer(max_size=10_000, aging_s=10, fair_share=fair_share, clock=clock)
        self.sql = (
            None
            if backend == "memory"
            else SyncDurableQueue.open(url, max_size=10_000, aging_s=10, fair_share=fair_share, clock=clock)
        )

    def put(self, *tasks: Task, deadline: float | None = None) -> None:
        for t in tasks:
            self.sql.put(t, deadline=deadline) if self.sql is not None else self.local.put(t)

    def claim(self) -> Task | None:
        """Claim the next task and leave it running (a claimed, unfinished task)."""
        if self.sql is not None:
            lease = self.sql.claim("w")
            return lease.task if lease else None
        return self.local.claim_nowait()

    def finish(self, t: Task) -> None:
        self.sql.complete(t.id, "w") if self.sql is not None else self.local.complete(t.id)

    def drain(self, limit: int = 10_000) -> list[str]:
        """One claimer that completes each task before it claims the next: the claimed tasks' texts in order."""
        order = []
        while len(order) < limit and (t := self.claim()) is not None:
            order.append(t.text)
            self.finish(t)
        return order

    def close(self) -> None:
        if self.sql is not None:
            self.sql.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "memory":
        return "memory", ""
    if request.param == "sqlite":
        return "sqlite", f"sqlite:///{tmp_path / 'queue.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return "postgres", url


@pytest.fixture
def make(backend: tuple[str, str]) -> Iterator[Callable[..., Queue]]:
    opened: list[Queue] = []

    def make(fair_share: bool = True, clock: Clock | None = None) -> Queue:
        queue = Queue(*backend, clock or Clock(), fair_share)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


def test_a_small_tenant_is_served_within_the_first_claims_behind_a_big_backlog(make: Callable[..., Queue]) -> None:
    queue = make()
    queue.put(*(task("a", f"a{i}") for i in range(50)))
    queue.put(*(task("b", f"b{i}") for i in range(5)))
    order = queue.drain()
    assert sorted(order) == sorted([f"a{i}" for i in range(50)] + [f"b{i}" for i in range(5)])
    assert {f"b{i}" for i in range(5)} <= set(order[:10])
    # Taking turns: a0 (it came first), b0, a1, b1, ...; each tenant's own tasks stay in order.
    assert order[:10] == [x for i in range(5) for x in (f"a{i}", f"b{i}")]
    assert order[10:] == [f"a{i}" for i in range(5, 50)]


def test_without_fair_share_a_backlog_is_served_first_come_first_served(make: Callable[..., Queue]) -> None:
    queue = make(fair_share=False)
    queue.put(*(task("a", f"a{i}") for i in range(50)))
    queue.put(*(task("b", f"b{i}") for i in range(5)))
    assert queue.drain() == [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(5)]


def test_a_tenant_arriving_late_starts_level_with_the_others_not_ahead_of_them(make: Callable[..., Queue]) -> None:
    queue = make()
    queue.put(*(task("a", f"a{i}") for i in range(30)))
    assert queue.drain(limit=20) == [f"a{i}" for i in range(20)]
    queue.put(*(task("b", f"b{i}") for i in range(3)))
    queue.put(*(task("c", f"c{i}") for i in range(2)))
    # b and c join a's current round instead of getting a head start of 20 turns.
    assert queue.drain(limit=8) == ["a20", "b0", "c0", "a21", "b1", "c1", "a22", "b2"]


def test_a_tenant_whose_line_emptied_starts_afresh_instead_of_paying_for_its_past(
    make: Callable[..., Queue],
) -> None:
    queue = make()
    queue.put(*(task("a", f"a{i}") for i in range(40)))
    queue.drain()
    queue.put(*(task("b", f"b{i}") for i in range(10)))
    queue.put(*(task("a", f"new{i}") for i in range(3)))
    assert queue.drain(limit=6) == ["b0", "new0", "b1", "new1", "b2", "new2"]


def test_a_tenants_turns_continue_past_its_running_tasks(make: Callable[..., Queue]) -> None:
    queue = make()
    queue.put(task("a", "a0"), task("a", "a1"))
    first = queue.claim()  # a0 runs and is not finished
    assert first is not None and first.text == "a0"
    queue.put(task("b", "b0"))
    queue.put(task("a", "a2"))  # a's third task, after a1 in a's line
    queue.put(task("b", "b1"))
    assert queue.drain() == ["a1", "b0", "a2", "b1"]


def test_priority_classes_beat_fair_share(make: Callable[..., Queue]) -> None:
    queue = make()
    queue.put(*(task("a", f"a-high{i}", "high") for i in range(5)))
    queue.put(*(task("b", f"b-normal{i}") for i in range(3)))
    queue.put(task("b", "b-critical", "critical"))
    assert queue.drain() == ["b-critical", *(f"a-high{i}" for i in range(5)), *(f"b-normal{i}" for i in range(3))]


def test_aging_beats_fair_share(make: Callable[..., Queue]) -> None:
    clock = Clock()
    queue = make(clock=clock)
    queue.put(*(task("a", f"a{i}") for i in range(3)))
    clock.now += 10  # a whole aging period: a's tasks now rank as high
    queue.put(*(task("b", f"b{i}") for i in range(3)))
    assert queue.drain() == ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_an_earlier_deadline_beats_fair_share(backend: tuple[str, str], make: Callable[..., Queue]) -> None:
    if backend[0] == "memory":
        pytest.skip("the in-process queue has no deadlines")
    clock = Clock()
    queue = make(clock=clock)
    queue.put(*(task("a", f"a{i}") for i in range(3)), deadline=clock.now + 60)
    queue.put(task("b", "b-later"), deadline=clock.now + 120)
    queue.put(task("b", "b-none"))
    queue.put(task("c", "c-sooner"), deadline=clock.now + 30)
    assert queue.drain() == ["c-sooner", "a0", "a1", "a2", "b-later", "b-none"]


def test_a_batch_claim_interleaves_tenants(backend: tuple[str, str], make: Callable[..., Queue]) -> None:
    if backend[0] == "memory":
        pytest.skip("the in-process queue claims one task at a time")
    queue = make()
    assert queue.sql is not None
    queue.sql.put_many([task("a", f"a{i}") for i in range(20)] + [task("b", f"b{i}") for i in range(20)])
    assert [lease.task.text for lease in queue.sql.claim_many("w", 6)] == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_many_tenants_each_get_a_claim_per_round(make: Callable[..., Queue]) -> None:
    queue = make()
    tenants = [f"t{j:02}" for j in range(25)]
    for j, tenant in enumerate(tenants):
        queue.put(*(task(tenant, f"{tenant}-{i}") for i in range(j + 1)))  # t00 one task ... t24 twenty-five
    order = queue.drain()
    assert sorted(t.split("-")[0] for t in order[:25]) == tenants  # the first round: one each
    assert len(order) == 25 * 26 // 2


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_the_queue_setting_reaches_both_queue_kinds(kind: str, tmp_path: Path) -> None:
    for fair_share, expected in ((True, ["a0", "b0", "a1"]), (False, ["a0", "a1", "a2"])):
        settings = Settings(data_dir=tmp_path / f"data-{fair_share}", queue=kind, queue_fair_share=fair_share)
        queue = open_queue(settings)
        assert isinstance(queue, LocalQueue if kind == "memory" else SqlQueue)
        try:
            for t in [task("a", f"a{i}") for i in range(3)] + [task("b", f"b{i}") for i in range(3)]:
                await queue.put(t)
            order = []
            for _ in range(3):
                claim = await queue.claim("w")
                order.append(claim.task.text)
                await queue.finish(claim.task.id, "w", ok=True)
            assert order == expected
        finally:
            queue.close()


def _drain(url: str, worker: str, out: str, barrier: Any) -> None:
    queue = SyncDurableQueue.open(url, max_size=10_000)
    claimed: list[str] = []
    barrier.wait(timeout=60)
    while leases := queue.claim_many(worker, 3):
        ids = [lease.task.id for lease in leases]
        claimed += ids
        if queue.complete_many(ids, worker) != len(ids):
            raise AssertionError(f"{worker} lost a lease it had just taken")
    queue.close()
    Path(out).write_text("\n".join(claimed))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_concurrent_claimers_with_many_tenants_claim_every_task_exactly_once(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    url = backend[1]
    queue = SyncDurableQueue.open(url, max_size=10_000)
    tasks = [task(f"tenant{i % 7}", f"t{i}", ("critical", "high", "normal", "low")[i % 4]) for i in range(1200)]
    queue.put_many(tasks)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    outs = [tmp_path / f"worker{i}.txt" for i in range(3)]
    workers = [context.Process(target=_drain, args=(url, f"w{i}", str(outs[i]), barrier)) for i in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=300)
    assert [process.exitcode for process in workers] == [0, 0, 0]
    claimed = [line for out in outs for line in out.read_text().splitlines()]
    assert len(claimed) == len(set(claimed)) == len(tasks)  # no double claims
    assert set(claimed) == {t.id for t in tasks}  # none lost
    stats = queue.stats()
    assert (stats.completed, stats.queued, stats.running) == (len(tasks), 0, 0)
    queue.close()
