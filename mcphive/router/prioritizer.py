"""The prioritizer: priority classes with aging, bounded, with the ``put / claim / complete / fail`` seam.

Claim order: the task with the lowest *effective rank* runs first, where a task's effective rank
is its class rank (critical 0 ... low 3) minus one for every ``aging_s`` seconds it has waited.
So a low task that has waited ``3 * aging_s`` competes with fresh critical work, and no class
starves. Within a class, first come first served. Each class is a FIFO deque, so a claim only
compares the four heads: O(1) whatever the queue length.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from mcphive.errors import QueueFull
from mcphive.types import Priority, Task

__all__ = ["Prioritizer", "QueueStats"]


@dataclass
class QueueStats:
    """Counters for observability and tests."""

    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    per_class: dict[str, int] = field(default_factory=dict)


class Prioritizer:
    """An in-process priority queue with aging and backpressure."""

    def __init__(
        self, *, max_size: int = 1000, aging_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._queues: dict[Priority, deque[tuple[float, Task]]] = {p: deque() for p in Priority}
        self._running: dict[str, Task] = {}
        self._max_size = max_size
        self._aging_s = aging_s
        self._clock = clock
        self._stats = QueueStats()
        self._wakeup = anyio.Event()

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def put(self, task: Task) -> None:
        """Queue ``task``.

        Raises:
            QueueFull: the queue holds ``max_size`` tasks already.
        """
        if len(self) >= self._max_size:
            raise QueueFull(f"the task queue is full ({self._max_size} waiting); retry later or raise queue_max")
        self._queues[task.priority].append((self._clock(), task))
        self._wakeup.set()

    def _effective(self, priority: Priority, enqueued: float, now: float) -> tuple[float, float]:
        return (priority.rank - (now - enqueued) / self._aging_s, enqueued)

    def claim_nowait(self) -> Task | None:
        """The next task by effective rank, or None when empty."""
        now = self._clock()
        heads = [(self._effective(p, q[0][0], now), p) for p, q in self._queues.items() if q]
        if not heads:
            return None
        _, priority = min(heads)
        _, task = self._queues[priority].popleft()
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
        for queue in self._queues.values():
            for item in queue:
                if item[1].id == task_id:
                    queue.remove(item)
                    return True
        return False

    def complete(self, task_id: str) -> None:
        """Mark a claimed task done."""
        if self._running.pop(task_id, None) is not None:
            self._stats.completed += 1

    def fail(self, task_id: str) -> None:
        """Mark a claimed task failed."""
        if self._running.pop(task_id, None) is not None:
            self._stats.failed += 1

    def stats(self) -> QueueStats:
        """A snapshot of the counters."""
        per_class = {p.value: len(q) for p, q in self._queues.items()}
        return QueueStats(
            queued=len(self),
            running=len(self._running),
            completed=self._stats.completed,
            failed=self._stats.failed,
            per_class=per_class,
        )
