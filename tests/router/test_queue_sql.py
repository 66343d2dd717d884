"""The durable queue on real SQLite and a private PostgreSQL cluster: order, bounds, leases and many processes."""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _locks import held_write_lock
from _pg import postgres_cluster
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mcphive.errors import InvalidTask, QueueFull, StoreError
from mcphive.memory._tables import Base
from mcphive.router.queue_sql import DurableQueue, SyncDurableQueue
from mcphive.types import Principal, Priority, Task


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def task(priority: str = "normal", text: str = "t", agent: str | None = None, tenant: str = "default") -> Task:
    return Task(text=text, workspace=".", priority=Priority(priority), agent=agent, principal=Principal(tenant=tenant))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(queue_url: str, clock: Clock) -> Iterator[SyncDurableQueue]:
    opened = SyncDurableQueue.open(queue_url, aging_s=10, lease_s=30, max_attempts=2, clock=clock)
    yield opened
    opened.close()


def texts(queue: SyncDurableQueue, worker: str = "w", n: int = 100) -> list[str]:
    return [lease.task.text for lease in queue.claim_many(worker, n)]


def test_claim_takes_the_most_urgent_class_first_and_fifo_within_a_class(queue: SyncDurableQueue) -> None:
    for t in [
        task("low", "l1"),
        task("normal", "n1"),
        task("critical", "c1"),
        task("normal", "n2"),
        task("high", "h1"),
    ]:
        queue.put(t)
    claimed = [queue.claim("w") for _ in range(6)]
    assert [lease.task.text for lease in claimed if lease] == ["c1", "h1", "n1", "n2", "l1"]
    assert claimed[-1] is None


def test_aging_lets_a_long_waiting_low_task_overtake_fresh_critical_work(queue: SyncDurableQueue, clock: Clock) -> None:
    queue.put(task("low", "old-low"))
    clock.now += 25  # two whole aging periods: rank 3 - 2 = 1, still behind a fresh critical (0)
    queue.put(task("critical", "fresh-critical"))
    queue.put(task("high", "fresh-high"))
    assert texts(queue, n=1) == ["fresh-critical"]
    clock.now += 5  # three periods: rank 0 now, and it came first
    queue.put(task("critical", "newer-critical"))
    assert texts(queue) == ["old-low", "newer-critical", "fresh-high"]


def test_an_earlier_deadline_goes_first_within_a_class(queue: SyncDurableQueue, clock: Clock) -> None:
    queue.put(task("normal", "no-deadline"))
    queue.put(task("normal", "late"), deadline=clock.now + 300)
    queue.put(task("normal", "soon"), deadline=clock.now + 60)
    queue.put(task("high", "high-no-deadline"))
    assert texts(queue) == ["high-no-deadline", "soon", "late", "no-deadline"]


@pytest.mark.parametrize("fair_share", [True, False])
def test_claim_order_matches_the_documented_rule_for_a_mixed_queue(
    queue_url: str, clock: Clock, fair_share: bool
) -> None:
    queue = SyncDurableQueue.open(queue_url, aging_s=10, fair_share=fair_share, clock=clock)
    rng = random.Random(7)
    expected: list[tuple[int, float, int, int, str]] = []
    turns: Counter[tuple[str, int]] = Counter()
    for i in range(300):
        clock.now += rng.choice((0.0, 0.5, 3.0, 11.0))
        priority = rng.choice(list(Priority))
        tenant = rng.choice(("acme", "acme", "acme", "globex", "initech"))
        deadline = clock.now + rng.randrange(1, 500) if rng.random() < 0.2 else None
        t = task(priority.value, f"t{i}", tenant=tenant)
        queue.put(t, deadline=deadline)
        # Nothing is claimed yet, so a task's turn is its place in its tenant's line of its class.
        turns[tenant, priority.rank] += 1
        expected.append((priority.rank, clock.now, turns[tenant, priority.rank], i, t.text))
    now = clock.now + 1
    clock.now = now

    def key(entry: tuple[int, float, int, int, str], deadlines: dict[str, float | None]) -> tuple[float, ...]:
        rank, enqueued, turn, i, text = entry
        deadline = deadlines[text]
        effective = rank - (now - enqueued) // 10
        return (effective, deadline if deadline is not None else float("inf"), turn if fair_share else 0, i)

    claimed = []
    while leases := queue.claim_many("w", 7):
        claimed += leases
    queue.close()
    deadlines = {lease.task.text: lease.deadline for lease in claimed}
    assert [lease.task.text for lease in claimed] == [e[4] for e in sorted(expected, key=lambda e: key(e, deadlines))]


def test_put_refuses_with_queue_full_and_put_many_is_all_or_nothing(queue_url: str) -> None:
    queue = SyncDurableQueue.open(queue_url, max_size=3)
    try:
        queue.put_many([task(text="a"), task(text="b")])
        with pytest.raises(QueueFull, match="full"):
            queue.put_many([task(text="c"), task(text="d")])
        assert len(queue) == 2
        queue.put(task(text="c"))
        with pytest.raises(QueueFull):
            queue.put(task(text="d"))
        queue.claim("w")  # a claimed task no longer counts against the bound
        queue.put(task(text="d"))
        assert queue.stats().queued == 3
    finally:
        queue.close()


def test_putting_a_task_id_twice_is_refused(queue: SyncDurableQueue) -> None:
    t = task()
    queue.put(t)
    with pytest.raises(InvalidTask, match="already in the queue"):
        queue.put(t)
    assert len(queue) == 1


def test_an_expired_lease_makes_the_task_claimable_again_until_attempts_run_out(
    queue: SyncDurableQueue, clock: Clock
) -> None:
    t = task(text="fragile")
    queue.put(t)
    first = queue.claim("dead-worker")
    assert first is not None and first.attempt == 1
    assert queue.claim("other") is None  # leased, not expired
    clock.now += 31
    second = queue.claim("other")
    assert second is not None and second.task.id == t.id and second.attempt == 2
    clock.now += 31  # max_attempts=2: the second expiry fails it
    assert queue.claim("third") is None
    entry = queue.entry(t.id)
    assert entry is not None and entry.state == "failed" and entry.error and "lease expired" in entry.error


def test_a_stale_owner_can_neither_complete_nor_heartbeat(queue: SyncDurableQueue, clock: Clock) -> None:
    t = task()
    queue.put(t)
    assert queue.claim("slow") is not None
    clock.now += 31
    assert queue.claim("fast") is not None
    assert queue.complete(t.id, "slow") is False
    assert queue.heartbeat(t.id, "slow") is False
    assert queue.fail(t.id, "slow", error="late") is False
    assert queue.complete(t.id, "fast") is True
    entry = queue.entry(t.id)
    assert entry is not None and (entry.state, entry.lease_owner) == ("done", None)


def test_heartbeats_keep_a_lease_alive_past_its_first_expiry(queue: SyncDurableQueue, clock: Clock) -> None:
    t = task()
    queue.put(t)
    assert queue.claim("w") is not None
    for _ in range(3):
        clock.now += 20
        assert queue.heartbeat(t.id, "w") is True
    assert queue.claim("thief") is None
    assert queue.complete(t.id, "w") is True


def test_fail_with_retry_queues_the_task_again_while_attempts_remain(queue: SyncDurableQueue) -> None:
    t = task()
    queue.put(t)
    assert queue.claim("w") is not None
    assert queue.fail(t.id, "w", error="flaky", retry=True) is True
    again = queue.claim("w")
    assert again is not None and again.attempt == 2
    assert queue.fail(t.id, "w", error="flaky again", retry=True) is True
    entry = queue.entry(t.id)
    assert entry is not None and (entry.state, entry.error) == ("failed", "flaky again")
    assert queue.stats().failed == 1


def test_remove_drops_only_a_task_that_is_still_queued(queue: SyncDurableQueue) -> None:
    waiting, running = task(text="waiting"), task("critical", "running")
    queue.put_many([waiting, running])
    assert queue.claim("w") is not None
    assert queue.remove(running.id) is False
    assert queue.remove(waiting.id) is True
    assert queue.entry(waiting.id) is None and len(queue) == 0


def test_an_agent_limit_caps_how_many_of_its_tasks_run_at_once(queue_url: str) -> None:
    queue = SyncDurableQueue.open(queue_url, agent_limits={"code": 2})
    try:
        queue.put_many([task("critical", f"code{i}", agent="code") for i in range(4)] + [task("low", "docs", "docs")])
        first = queue.claim_many("w", 10)
        assert sorted(lease.task.text for lease in first) == ["code0", "code1"]
        assert [lease.task.text for lease in queue.claim_many("w", 10)] == ["docs"]
        assert queue.claim("w") is None
        assert queue.complete(first[0].task.id, "w")
        assert [lease.task.text for lease in queue.claim_many("w", 10)] == ["code2"]
    finally:
        queue.close()


def test_the_migrated_schema_equals_the_orm_metadata_on_each_backend(queue: SyncDurableQueue) -> None:
    with queue.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _drain(url: str, worker: str, batch: int, out: str, barrier: Any) -> None:
    queue = SyncDurableQueue.open(url, max_size=10_000)
    claimed: list[str] = []
    barrier.wait(timeout=60)
    while leases := queue.claim_many(worker, batch):
        ids = [lease.task.id for lease in leases]
        claimed += ids
        if queue.complete_many(ids, worker) != len(ids):
            raise AssertionError(f"{worker} lost a lease it had just taken")
    queue.close()
    Path(out).write_text("\n".join(claimed))


def test_concurrent_worker_processes_claim_every_task_exactly_once(queue_url: str, tmp_path: Path) -> None:
    queue = SyncDurableQueue.open(queue_url, max_size=10_000)
    tasks = [task(("critical", "high", "normal", "low")[i % 4], f"t{i}") for i in range(2000)]
    queue.put_many(tasks)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    outs = [tmp_path / f"worker{i}.txt" for i in range(4)]
    workers = [
        context.Process(target=_drain, args=(queue_url, f"w{i}", (1, 7)[i % 2], str(outs[i]), barrier))
        for i in range(4)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=300)
    assert [process.exitcode for process in workers] == [0, 0, 0, 0]
    claimed = [line for out in outs for line in out.read_text().splitlines()]
    assert len(claimed) == len(set(claimed)) == 2000  # no double claims
    assert set(claimed) == {t.id for t in tasks}  # none lost
    # Claims really were concurrent. (Not "all four": SQLite's write lock is not fair, and on a loaded machine one
    # process can drain a whole batch window before a late starter gets a turn.)
    assert sum(1 for out in outs if out.read_text()) >= 2
    stats = queue.stats()
    assert (stats.completed, stats.queued, stats.running) == (2000, 0, 0)
    queue.close()


def test_a_database_that_is_down_raises_store_error_naming_it(pg_url: str) -> None:
    with postgres_cluster(database="dies") as url:
        queue = SyncDurableQueue.open(url)
        queue.put(task())
    with pytest.raises(StoreError, match=r"could not claim tasks in the memory database .*dies"):
        queue.claim("w")
    queue.close()
    with pytest.raises(StoreError, match="cannot open database"):
        SyncDurableQueue.open(url)


@pytest.mark.anyio
async def test_the_async_queue_waits_for_a_task_put_by_another_caller(queue_url: str) -> None:
    async with DurableQueue.open(queue_url, lease_s=30) as queue:
        t = task("high", "later")

        async def put_soon() -> None:
            await anyio.sleep(0.05)
            await queue.put(t)

        async with anyio.create_task_group() as group:
            group.start_soon(put_soon)
            with anyio.fail_after(10):
                leases = await queue.claim_wait("w", 4, poll_s=0.02)
        assert [lease.task.id for lease in leases] == [t.id]
        assert await queue.heartbeat(t.id, "w") is True
        assert await queue.complete(t.id, "w") is True
        assert (await queue.stats()).completed == 1


@pytest.mark.anyio
async def test_a_task_put_or_queued_again_here_ends_a_claim_wait_before_its_next_poll(queue_url: str) -> None:
    async with DurableQueue.open(queue_url, lease_s=30) as queue:
        first, parked = task(text="put"), task(text="approved")

        async def claim_one() -> str:
            with anyio.fail_after(10):  # far less than the poll: only this process's own wake-up can end the wait
                (lease,) = await queue.claim_wait("w", 1, poll_s=600)
            return lease.task.text

        async def put_soon() -> None:
            await anyio.sleep(0.05)
            await queue.put(first)

        async with anyio.create_task_group() as group:
            group.start_soon(put_soon)
            assert await claim_one() == "put"

        await queue.put(parked)
        assert [lease.task.id for lease in await queue.claim_many("w", 1)] == [parked.id]
        assert await queue.park(parked.id, "w", {"call_key": "k"}) is True

        async def decide_soon() -> None:
            await anyio.sleep(0.05)
            assert await queue.decide(parked.id, {"approved": True}) is not None

        async with anyio.create_task_group() as group:
            group.start_soon(decide_soon)
            assert await claim_one() == "approved"


@pytest.mark.anyio
async def test_async_queue_calls_run_on_the_loop_thread_when_sqlite_is_free(queue_url: str) -> None:
    import threading

    async with DurableQueue.open(queue_url) as queue:
        ran_on: list[int] = []
        original = queue.sync.put

        def put(t: Task, *, deadline: float | None = None) -> None:
            ran_on.append(threading.get_ident())
            original(t, deadline=deadline)

        queue.sync.put = put  # type: ignore[method-assign]
        await queue.put(task())

        on_loop = ran_on == [threading.get_ident()]
        assert on_loop is queue_url.startswith("sqlite")  # PostgreSQL is a network round trip: always a thread


@pytest.mark.anyio
async def test_a_locked_sqlite_queue_moves_the_call_to_a_thread_and_the_loop_keeps_running(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    async with DurableQueue.open(f"sqlite:///{path}") as queue:
        async with held_write_lock(path) as ticks:  # another process's writer holds the lock for 0.3 s
            with anyio.fail_after(10):
                await queue.put(task(text="queued while locked"))

        assert ticks.count >= 10  # the loop was not held while the put waited for the lock
        assert [lease.task.text for lease in await queue.claim_many("w", 5)] == ["queued while locked"]
        with queue.sync.engine.connect() as connection:  # the inline attempt's zero busy timeout did not stick
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


@pytest.mark.anyio
async def test_a_put_while_a_claimer_waits_on_an_empty_queue_hands_it_the_task_without_a_claim(queue_url: str) -> None:
    async with DurableQueue.open(queue_url, lease_s=30) as queue:
        claims = Counter[str]()
        original = queue.sync.claim_many

        def counted(worker_id: str, n: int, *, lease_s: float | None = None) -> list[Any]:
            claims[worker_id] += 1
            return original(worker_id, n, lease_s=lease_s)

        queue.sync.claim_many = counted  # type: ignore[method-assign]
        t = task("high", "handed over")

        async def put_soon() -> None:
            await anyio.wait_all_tasks_blocked()  # the claimer found nothing and waits
            await queue.put(t)

        async with anyio.create_task_group() as group:
            group.start_soon(put_soon)
            with anyio.fail_after(10):
                (lease,) = await queue.claim_wait("w", 1, poll_s=600)

        assert (lease.task.id, lease.worker_id, lease.attempt) == (t.id, "w", 1)
        assert claims == {"w": 1}  # only the first, empty claim: the task came with the put
        entry = await queue.entry(t.id)
        assert entry is not None and (entry.state, entry.lease_owner, entry.attempts) == ("claimed", "w", 1)
        assert entry.lease_expires_at == pytest.approx(lease.expires_at)
        assert await queue.heartbeat(t.id, "w") is True
        assert await queue.complete(t.id, "w") is True


def test_put_to_hands_over_only_when_nothing_waits_and_the_agent_is_unlimited(queue_url: str, clock: Clock) -> None:
    queue = SyncDurableQueue.open(queue_url, lease_s=30, agent_limits={"ops": 2}, clock=clock)
    try:
        older, newer, limited = task(text="older"), task("critical", "newer"), task(text="limited", agent="ops")
        queue.put(older)
        assert queue.put_to(newer, "w") is None  # a task waits: the claim order decides, not the put
        assert queue.put_to(limited, "w") is None  # its limit is counted at claims
        assert [texts(queue, n=1) for _ in range(3)] == [["newer"], ["older"], ["limited"]]
        free = task(text="free")
        lease = queue.put_to(free, "w2")
        assert lease is not None and lease.expires_at == clock.now + 30
        assert queue.claim("w3") is None  # handed over means claimed: nobody else gets it
        assert queue.release(free.id, "w2") is True  # given back unrun, not counted as an attempt
        entry = queue.entry(free.id)
        assert entry is not None and (entry.state, entry.attempts, entry.lease_owner) == ("queued", 0, None)
        assert texts(queue, "w3") == ["free"]
    finally:
        queue.close()


@pytest.mark.anyio
async def test_a_claimer_cancelled_during_a_hand_off_leaves_the_task_queued(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    async with DurableQueue.open(f"sqlite:///{path}", lease_s=30) as queue:
        t = task(text="nobody took it")
        with anyio.CancelScope() as waiting:

            async def put_while_locked() -> None:
                await anyio.wait_all_tasks_blocked()
                # The put waits in a thread for the lock; the claimer gives up while its hand-off is under way.
                async with held_write_lock(path, seconds=0.3), anyio.create_task_group() as inner:
                    inner.start_soon(queue.put, t)
                    await anyio.sleep(0.1)
                    waiting.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(put_while_locked)
                await queue.claim_wait("w", 1, poll_s=600)

        entry = await queue.entry(t.id)
        assert entry is not None and (entry.state, entry.attempts, entry.lease_owner) == ("queued", 0, None)
        assert [lease.task.id for lease in await queue.claim_many("w2", 1)] == [t.id]
