"""The durable task queue: the prioritizer's ``put / claim / complete / fail`` seam, persisted with SQLAlchemy.

SQLite by default (one host, many processes), PostgreSQL to scale out (many ``mcphive worker``
processes on many hosts). A claim hands a task out under a *lease*: the worker heartbeats to
keep it, and completes or fails it; only the lease's owner may. A task whose worker died is
claimable again once its lease expires, until it has been handed out ``max_attempts`` times.

:class:`DurableQueue` is async: it runs each method of the blocking :class:`SyncDurableQueue`
(its ``.sync``) in a worker thread, or inline on SQLite when the lock is free
(:func:`~mcphive.memory._engine.run_blocking`). Times are UNIX seconds on the queue's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Self, TypeVar

import anyio

from mcphive.memory._engine import run_blocking
from mcphive.types import Task

from ._queue_sync import Lease, QueueEntry, SyncDurableQueue
from .prioritizer import QueueStats

__all__ = ["DurableQueue", "Lease", "QueueEntry", "SyncDurableQueue"]

T = TypeVar("T")


class DurableQueue:
    """The async face of :class:`SyncDurableQueue` (reachable as :attr:`sync`): each call runs in a worker thread
    (inline on SQLite when it can take its lock at once).

    A cancelled caller does not abandon the thread, so a claim under way still commits or rolls
    back as a whole; a lease it took unseen simply expires and the task is handed out again.

    Args:
        store: the blocking queue to wrap; usually built by :meth:`open`.
    """

    def __init__(self, store: SyncDurableQueue) -> None:
        self.sync = store
        self._idle: set[anyio.Event] = set()
        """One event per :meth:`claim_wait` of this process between two polls; a task made claimable sets them."""

    @classmethod
    def open(cls, url: str, **options: Any) -> Self:
        """Open and migrate the database at ``url`` (blocking: call it while building the application)."""
        return cls(SyncDurableQueue.open(url, **options))

    async def _run(self, operation: Callable[[], T]) -> T:
        """One operation of the blocking queue: inline when SQLite's lock is free, else in a worker thread."""
        return await run_blocking(self.sync.engine, operation)

    def _wake_idle(self) -> None:
        """This process's waiting claimers claim now rather than at their next poll."""
        for waiting in self._idle:
            waiting.set()

    def close(self) -> None:
        """Close every pooled connection."""
        self.sync.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def put(self, task: Task, *, deadline: float | None = None) -> None:
        """See :meth:`SyncDurableQueue.put`."""
        await self._run(lambda: self.sync.put(task, deadline=deadline))
        self._wake_idle()

    async def put_many(self, tasks: Sequence[Task], *, deadlines: Sequence[float | None] | None = None) -> None:
        """See :meth:`SyncDurableQueue.put_many`."""
        await self._run(lambda: self.sync.put_many(tasks, deadlines=deadlines))
        self._wake_idle()

    async def claim(self, worker_id: str, *, lease_s: float | None = None) -> Lease | None:
        """The next task under a lease, or None when nothing is waiting; see :meth:`SyncDurableQueue.claim`."""
        return await self._run(lambda: self.sync.claim(worker_id, lease_s=lease_s))

    async def claim_many(self, worker_id: str, n: int, *, lease_s: float | None = None) -> list[Lease]:
        """See :meth:`SyncDurableQueue.claim_many`."""
        return await self._run(lambda: self.sync.claim_many(worker_id, n, lease_s=lease_s))

    async def claim_wait(
        self, worker_id: str, n: int = 1, *, lease_s: float | None = None, poll_s: float = 0.2
    ) -> list[Lease]:
        """Wait until at least one task is claimable and claim up to ``n``; polls every ``poll_s`` while empty.

        A task this process makes claimable (put, or queued again by a decision or a retry) ends the
        wait at once; other processes' tasks are seen at the next poll. Wrap the call in
        ``anyio.fail_after`` (or cancel its scope) to stop waiting.
        """
        while True:
            woken = anyio.Event()  # made before the claim, so a put during it is not missed
            self._idle.add(woken)
            try:
                leases = await self.claim_many(worker_id, n, lease_s=lease_s)
                if leases:
                    return leases
                with anyio.move_on_after(poll_s):
                    await woken.wait()
            finally:
                self._idle.discard(woken)

    async def heartbeat(self, task_id: str, worker_id: str, *, lease_s: float | None = None) -> bool:
        """See :meth:`SyncDurableQueue.heartbeat`."""
        return await self._run(lambda: self.sync.heartbeat(task_id, worker_id, lease_s=lease_s))

    async def complete(self, task_id: str, worker_id: str) -> bool:
        """See :meth:`SyncDurableQueue.complete`."""
        return await self._run(lambda: self.sync.complete(task_id, worker_id))

    async def complete_many(self, task_ids: Sequence[str], worker_id: str) -> int:
        """See :meth:`SyncDurableQueue.complete_many`."""
        return await self._run(lambda: self.sync.complete_many(task_ids, worker_id))

    async def fail(self, task_id: str, worker_id: str, *, error: str = "", retry: bool = False) -> bool:
        """See :meth:`SyncDurableQueue.fail`."""
        failed = await self._run(lambda: self.sync.fail(task_id, worker_id, error=error, retry=retry))
        if failed and retry:
            self._wake_idle()
        return failed

    async def park(self, task_id: str, worker_id: str, pending: dict[str, Any]) -> bool:
        """See :meth:`SyncDurableQueue.park`."""
        return await self._run(lambda: self.sync.park(task_id, worker_id, pending))

    async def decide(self, task_id: str, decision: dict[str, Any]) -> dict[str, Any] | None:
        """See :meth:`SyncDurableQueue.decide`."""
        decided = await self._run(lambda: self.sync.decide(task_id, decision))
        if decided is not None:
            self._wake_idle()
        return decided

    async def pending(self, task_id: str) -> dict[str, Any] | None:
        """See :meth:`SyncDurableQueue.pending`."""
        return await self._run(lambda: self.sync.pending(task_id))

    async def remove(self, task_id: str) -> bool:
        """See :meth:`SyncDurableQueue.remove`."""
        return await self._run(lambda: self.sync.remove(task_id))

    async def entry(self, task_id: str) -> QueueEntry | None:
        """See :meth:`SyncDurableQueue.entry`."""
        return await self._run(lambda: self.sync.entry(task_id))

    async def stats(self) -> QueueStats:
        """See :meth:`SyncDurableQueue.stats`."""
        return await self._run(self.sync.stats)
