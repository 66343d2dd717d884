"""The task queue the hive's workers drain: in-process, or durable in SQL for many worker processes.

Both speak one small protocol — ``put``, ``claim``, ``heartbeat``, ``finish``, ``remove`` — so the
hive's worker loop is the same whichever is configured:

* ``memory`` — the in-process :class:`~mcphive.router.prioritizer.Prioritizer`; no leases needed.
* ``sqlite`` / ``postgres`` — :class:`~mcphive.router.queue_sql.DurableQueue`: claims are leases
  that workers keep alive with heartbeats; a task whose worker died is handed out again once its
  lease expires, so any number of ``mcphive worker`` processes, on any hosts, share one queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import anyio

from mcphive.router.prioritizer import Prioritizer
from mcphive.settings import Settings
from mcphive.types import Task

__all__ = ["Claim", "LocalQueue", "SqlQueue", "TaskQueue", "open_queue"]


@dataclass(frozen=True)
class Claim:
    """A task handed to one worker; ``lease_s`` is None when no lease needs keeping alive."""

    task: Task
    lease_s: float | None = None


class TaskQueue(Protocol):
    """What a hive worker needs from a queue."""

    durable: bool

    async def put(self, task: Task) -> None: ...

    async def claim(self, worker_id: str) -> Claim: ...

    async def heartbeat(self, task_id: str, worker_id: str) -> bool: ...

    async def finish(self, task_id: str, worker_id: str, *, ok: bool, error: str = "") -> bool: ...

    async def remove(self, task_id: str) -> bool: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class LocalQueue:
    """The in-process prioritizer behind the queue protocol."""

    durable = False

    def __init__(self, prioritizer: Prioritizer) -> None:
        self.prioritizer = prioritizer

    async def put(self, task: Task) -> None:
        self.prioritizer.put(task)

    async def claim(self, worker_id: str) -> Claim:
        return Claim(await self.prioritizer.claim())

    async def heartbeat(self, task_id: str, worker_id: str) -> bool:
        return True

    async def finish(self, task_id: str, worker_id: str, *, ok: bool, error: str = "") -> bool:
        (self.prioritizer.complete if ok else self.prioritizer.fail)(task_id)
        return True

    async def remove(self, task_id: str) -> bool:
        return self.prioritizer.remove(task_id)

    def __len__(self) -> int:
        return len(self.prioritizer)

    def close(self) -> None:
        pass


class SqlQueue:
    """The durable SQL queue behind the queue protocol (leases, heartbeats, re-delivery)."""

    durable = True

    def __init__(self, url: str, settings: Settings) -> None:
        from mcphive.router.queue_sql import DurableQueue

        self.lease_s = settings.queue_lease_s
        self.poll_s = settings.queue_poll_s
        self._queue = DurableQueue.open(
            url,
            max_size=settings.queue_max,
            aging_s=settings.queue_aging_s,
            lease_s=settings.queue_lease_s,
            max_attempts=settings.queue_max_attempts,
            agent_limits=settings.agent_limits or None,
        )

    async def put(self, task: Task) -> None:
        await self._queue.put(task)

    async def claim(self, worker_id: str) -> Claim:
        lease = (await self._queue.claim_wait(worker_id, 1, poll_s=self.poll_s))[0]
        return Claim(lease.task, self.lease_s)

    async def heartbeat(self, task_id: str, worker_id: str) -> bool:
        return await self._queue.heartbeat(task_id, worker_id)

    async def finish(self, task_id: str, worker_id: str, *, ok: bool, error: str = "") -> bool:
        if ok:
            return await self._queue.complete(task_id, worker_id)
        return await self._queue.fail(task_id, worker_id, error=error)

    async def remove(self, task_id: str) -> bool:
        return await self._queue.remove(task_id)

    def __len__(self) -> int:
        return len(self._queue.sync)

    def close(self) -> None:
        self._queue.close()


def open_queue(settings: Settings) -> TaskQueue:
    """The queue ``settings.queue`` names (``memory``, ``sqlite`` or ``postgres``)."""
    if settings.queue == "memory":
        return LocalQueue(Prioritizer(max_size=settings.queue_max, aging_s=settings.queue_aging_s))
    return SqlQueue(settings.queue_database_url, settings)


async def keep_alive(queue: TaskQueue, claim: Claim, worker_id: str, lost: anyio.CancelScope) -> None:
    """Heartbeat ``claim``'s lease every third of its length; cancel ``lost`` if another worker took it over."""
    if claim.lease_s is None:
        return
    while True:
        await anyio.sleep(claim.lease_s / 3)
        if not await queue.heartbeat(claim.task.id, worker_id):
            lost.cancel()
            return
