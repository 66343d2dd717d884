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
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Self, TypeVar

import anyio

from mcphive.memory._engine import run_blocking
from mcphive.types import Task

from ._queue_sync import Lease, QueueEntry, SyncDurableQueue
from .prioritizer import QueueStats

__all__ = ["DurableQueue", "Lease", "QueueEntry", "SyncDurableQueue"]

T = TypeVar("T")


@dataclass(eq=False)
class _Idle:
    """One :meth:`DurableQueue.claim_wait` of this process between two claims."""

    worker_id: str
    lease_s: float | None
    woken: anyio.Event = field(default_factory=anyio.Event)
    """Set when a task may have become claimable (or was handed over)."""
    ready: bool = False
    """Its claim found nothing and it waits: a put may hand it the task directly."""
    reserved: bool = False
    """A put chose it for a hand-off; it waits for ``settled`` before anything else."""
    settled: anyio.Event = field(default_factory=anyio.Event)
    leases: list[Lease] = field(default_factory=list)
    """What the put handed over (one lease), until claim_wait returns it."""
    gone: bool = False
    """claim_wait has ended (returned or was cancelled): a lease handed now must be given back."""


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
        self._idle: list[_Idle] = []
        """The :meth:`claim_wait` calls of this process between two claims; a task made claimable wakes them."""

    @classmethod
    def open(cls, url: str, **options: Any) -> Self:
        """Open and migrate the database at ``url`` (blocking: call it while building the application)."""
        return cls(SyncDurableQueue.open(url, **options))

    async def _run(self, operation: Callable[[], T]) -> T:
        """One operation of the blocking queue: inline when SQLite's lock is free, else in a worker thread."""
        return await run_blocking(self.sync.engine, operation)

    def _wake_idle(self) -> None:
        """This process's waiting claimers claim now rather than at their next poll."""
        for idle in self._idle:
            idle.woken.set()

    def _take_idle(self) -> _Idle | None:
        """Reserve one claimer that found nothing and waits, for a direct hand-off; None when there is none."""
        for idle in self._idle:
            if idle.ready and not idle.reserved:
                idle.ready, idle.reserved = False, True
                return idle
        return None

    def close(self) -> None:
        """Close every pooled connection."""
        self.sync.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def put(self, task: Task, *, deadline: float | None = None) -> None:
        """See :meth:`SyncDurableQueue.put`.

        When a claimer of this process waits with nothing to claim and nothing else is queued, the
        task is handed to it in the put's own transaction (:meth:`SyncDurableQueue.put_to`): it is the
        task that claimer's next claim would take, without the claim's four queries.
        """
        idle = self._take_idle()
        if idle is None:
            await self._run(lambda: self.sync.put(task, deadline=deadline))
            self._wake_idle()
            return
        lease = None
        try:
            lease = await self._run(
                lambda: self.sync.put_to(task, idle.worker_id, deadline=deadline, lease_s=idle.lease_s)
            )
        finally:
            if lease is not None and not idle.gone:
                idle.leases.append(lease)
            idle.settled.set()
            idle.woken.set()
        if lease is None:  # queued behind others: whoever claims first takes it
            self._wake_idle()
        elif idle.gone:  # the claimer stopped waiting meanwhile: the task goes back in line
            await self._release([lease])

    async def _release(self, leases: Sequence[Lease]) -> None:
        for lease in leases:
            await self._run(partial(self.sync.release, lease.task.id, lease.worker_id))
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
        wait at once — a put while nothing else is queued hands its task over directly (see
        :meth:`put`); other processes' tasks are seen at the next poll. Wrap the call in
        ``anyio.fail_after`` (or cancel its scope) to stop waiting.
        """
        first = True
        while True:
            idle = _Idle(worker_id, lease_s)  # listed before the claim, so a put during it is not missed
            self._idle.append(idle)
            try:
                if first:
                    # Yield once before the first claim: what runs now (the caller of a task that just
                    # finished, submitting the next) may put its task straight into this claimer's hands.
                    first = False
                    idle.ready = True
                    await anyio.lowlevel.checkpoint()
                    idle.ready = False
                    if handed := await self._handed(idle):
                        return handed
                leases = await self.claim_many(worker_id, n, lease_s=lease_s)
                if leases:
                    return leases
                idle.ready = True
                with anyio.move_on_after(poll_s):
                    await idle.woken.wait()
                idle.ready = False
                if handed := await self._handed(idle):
                    return handed
            finally:
                idle.gone = True
                self._idle.remove(idle)
                if idle.leases:  # handed a task, but cancelled before returning it
                    with anyio.CancelScope(shield=True):
                        await self._release(idle.leases)

    @staticmethod
    async def _handed(idle: _Idle) -> list[Lease]:
        """What a put chose ``idle`` for, once that put is done: a lease, or nothing when it queued the task."""
        if not idle.reserved:
            return []
        await idle.settled.wait()
        handed, idle.leases = idle.leases, []
        return handed

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
