"""The prioritizer: priority classes with aging, fair share between tenants, bounded; ``put / claim / complete / fail``.

Claim order, the same as the durable queue's (:mod:`mcphive.router._queue_statements`):

1. the lowest *effective rank*: the class rank (critical 0 ... low 3) minus one for every whole
   ``aging_s`` seconds the task has waited, so a low task that has waited ``3 * aging_s``
   competes with fresh critical work, and no class starves;
2. fair share (on by default): the lower *turn*, the task's round in its tenant's line of its
   class, so tenants with work of equal effective rank take turns;
3. first come, first served.

Each (class, tenant) is a FIFO deque whose head is its best task, so a claim compares only the
heads: O(classes x tenants waiting), whatever the queue length.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import anyio

from mcphive.errors import QueueFull
from mcphive.types import Priority, Task

__all__ = ["Prioritizer", "QueueStats"]


class _Entry(NamedTuple):
    enqueued: float
    turn: int
    order: int
    task: Task


@dataclass
class QueueStats:
    """Counters for observability and tests."""

    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    per_class: dict[str, int] = field(default_factory=dict)


class Prioritizer:
    """An in-process priority queue with aging, fair share and backpressure.

    Args:
        max_size: most tasks waiting; :meth:`put` raises :class:`QueueFull` beyond it.
        aging_s: seconds of waiting that lift a task by one priority class.
        fair_share: tenants take turns among tasks of equal effective rank; False serves them
            first come, first served.
        clock: seconds; injectable for tests.
    """

    def __init__(
        self,
        *,
        max_size: int = 1000,
        aging_s: float = 30.0,
        fair_share: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lines: dict[Priority, dict[str, deque[_Entry]]] = {p: {} for p in Priority}
        self._running: dict[str, Task] = {}
        # Per (class, tenant) with live (queued or running) tasks: how many, and the newest one's turn.
        self._live: Counter[tuple[Priority, str]] = Counter()
        self._last_turn: dict[tuple[Priority, str], int] = {}
        self._order = itertools.count()
        self._max_size = max_size
        self._aging_s = aging_s
        self._fair_share = fair_share
        self._clock = clock
        self._stats = QueueStats()
        self._wakeup = anyio.Event()

    def __len__(self) -> int:
        return sum(len(line) for lines in self._lines.values() for line in lines.values())

    def put(self, task: Task) -> None:
        """Queue ``task`` at the end of its tenant's line of its class.

        Its turn is one more than its tenant's newest live task of the class, and at least the
        lowest turn queued in the class: a tenant arriving late starts level with the others.

        Raises:
            QueueFull: the queue holds ``max_size`` tasks already.
        """
        if len(self) >= self._max_size:
            raise QueueFull(f"the task queue is full ({self._max_size} waiting); retry later or raise queue_max")
        lines, pair = self._lines[task.priority], (task.priority, task.principal.tenant)
        floor = min((line[0].turn for line in lines.values()), default=0)
        turn = self._last_turn[pair] = max(self._last_turn.get(pair, 0) + 1, floor)
        self._live[pair] += 1
        lines.setdefault(pair[1], deque()).append(_Entry(self._clock(), turn, next(self._order), task))
        self._wakeup.set()

    def _key(self, rank: int, entry: _Entry, now: float) -> tuple[float, ...]:
        effective = rank - math.floor((now - entry.enqueued) / self._aging_s)
        return (effective, entry.turn if self._fair_share else 0, entry.enqueued, entry.order)

    def claim_nowait(self) -> Task | None:
        """The next task in claim order, or None when empty."""
        now = self._clock()
        heads = [
            (self._key(priority.rank, line[0], now), priority, tenant)
            for priority, lines in self._lines.items()
            for tenant, line in lines.items()
        ]
        if not heads:
            return None
        _, priority, tenant = min(heads)
        line = self._lines[priority][tenant]
        task = line.popleft().task
        if not line:
            del self._lines[priority][tenant]
        self._running[task.id] = task
        return task

    async def claim(self) -> Task:
        """Wait for and return the next task."""
        while True:
            task = self.claim_nowait()
            if task is not None:
                return task
            # Every idle worker waits on the same event; a fresh one only once the last was used.
            if self._wakeup.is_set():
                self._wakeup = anyio.Event()
            await self._wakeup.wait()

    def remove(self, task_id: str) -> bool:
        """Drop a queued (not yet claimed) task; True if it was queued."""
        for lines in self._lines.values():
            for tenant, line in lines.items():
                for entry in line:
                    if entry.task.id == task_id:
                        line.remove(entry)
                        if not line:
                            del lines[tenant]
                        self._forget(entry.task)
                        return True
        return False

    def complete(self, task_id: str) -> None:
        """Mark a claimed task done."""
        task = self._running.pop(task_id, None)
        if task is not None:
            self._stats.completed += 1
            self._forget(task)

    def fail(self, task_id: str) -> None:
        """Mark a claimed task failed."""
        task = self._running.pop(task_id, None)
        if task is not None:
            self._stats.failed += 1
            self._forget(task)

    def _forget(self, task: Task) -> None:
        """A task left for good: once its tenant has no live task of the class, its line starts afresh."""
        pair = (task.priority, task.principal.tenant)
        self._live[pair] -= 1
        if self._live[pair] <= 0:
            del self._live[pair]
            self._last_turn.pop(pair, None)

    def stats(self) -> QueueStats:
        """A snapshot of the counters."""
        per_class = {p.value: sum(len(line) for line in lines.values()) for p, lines in self._lines.items()}
        return QueueStats(
            queued=len(self),
            running=len(self._running),
            completed=self._stats.completed,
            failed=self._stats.failed,
            per_class=per_class,
        )
