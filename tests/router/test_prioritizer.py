import pytest

from mcphive.errors import QueueFull
from mcphive.router.prioritizer import Prioritizer
from mcphive.types import Priority, Task


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def task(priority: str, text: str = "t") -> Task:
    return Task(text=text, workspace=".", priority=Priority(priority))


def test_claim_takes_the_most_urgent_class_first_and_fifo_within_a_class() -> None:
    queue = Prioritizer(clock=Clock())
    tasks = [task("low", "l1"), task("normal", "n1"), task("critical", "c1"), task("normal", "n2"), task("high", "h1")]
    for t in tasks:
        queue.put(t)
    order = [queue.claim_nowait() for _ in tasks]
    assert [t.text for t in order if t] == ["c1", "h1", "n1", "n2", "l1"]


def test_aging_lets_a_waiting_low_task_overtake_fresh_critical_work() -> None:
    clock = Clock()
    queue = Prioritizer(clock=clock, aging_s=10)
    queue.put(task("low", "old-low"))
    clock.now = 31  # three whole aging periods: level with a fresh critical's 0, and it came first
    queue.put(task("critical", "fresh-critical"))
    first = queue.claim_nowait()
    assert first is not None and first.text == "old-low"


def test_a_steady_stream_of_high_priority_work_never_starves_low() -> None:
    clock = Clock()
    queue = Prioritizer(clock=clock, aging_s=5)
    queue.put(task("low", "patient"))
    claimed = []
    for _ in range(100):
        queue.put(task("high", "urgent"))
        clock.now += 1
        got = queue.claim_nowait()
        assert got is not None
        claimed.append(got.text)
    assert "patient" in claimed


def test_a_full_queue_refuses_with_a_clear_error_and_keeps_what_it_had() -> None:
    queue = Prioritizer(max_size=2)
    queue.put(task("normal", "a"))
    queue.put(task("normal", "b"))
    with pytest.raises(QueueFull, match="queue is full"):
        queue.put(task("normal", "c"))
    assert len(queue) == 2


def test_claim_never_returns_a_task_twice_and_removed_tasks_never_run() -> None:
    queue = Prioritizer()
    tasks = [task("normal", str(i)) for i in range(20)]
    for t in tasks:
        queue.put(t)
    assert queue.remove(tasks[5].id)
    claimed = [queue.claim_nowait() for _ in range(25)]
    ids = [t.id for t in claimed if t is not None]
    assert len(ids) == len(set(ids)) == 19
    assert tasks[5].id not in ids


@pytest.mark.anyio
async def test_claim_waits_for_work_and_wakes_every_idle_worker() -> None:
    import anyio

    queue = Prioritizer()
    got: list[str] = []

    async def worker() -> None:
        got.append((await queue.claim()).text)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(worker)
            await anyio.lowlevel.checkpoint()  # let both workers block on claim
            queue.put(task("normal", "a"))
            await anyio.lowlevel.checkpoint()
            queue.put(task("normal", "b"))
    assert sorted(got) == ["a", "b"]
