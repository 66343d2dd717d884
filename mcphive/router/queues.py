"""The task queue the hive's workers drain: in-process, or durable in SQL for many worker processes.

Both speak one small protocol — ``put``, ``claim``, ``heartbeat``, ``finish``, ``remove``, and
``park`` / ``decide`` / ``pending`` for tasks awaiting approval — so the hive's worker loop is the
same whichever is configured:

* ``memory`` — the in-process :class:`~mcphive.router.prioritizer.Prioritizer`; no leases needed.

Both order claims alike: priority class with aging, then deadline (durable only), then fair
share between tenants (``queue_fair_share``), then first come, first served.
* ``sqlite`` / ``postgres`` — :class:`~mcphive.router.queue_sql.DurableQueue`: claims are leases
  that workers keep alive with heartbeats; a task whose worker died is handed out again once its
  lease expires, so any number of ``mcphive worker`` processes, on any hosts, share one queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from mcphive.router.prioritizer import Prioritizer
from mcphive.settings import Settings
from mcphive.types import ApprovalDecision, ApprovalRequest, Task

__all__ = ["Claim", "LocalQueue", "SqlQueue", "TaskQueue", "open_queue"]


@dataclass(frozen=True)
class Claim:
    """A task handed to one worker; ``lease_s`` is None when no lease needs keeping alive.

    ``decisions`` are the approval decisions already taken for the task's writing calls, by call key.
    """

    task: Task
    lease_s: float | None = None
    decisions: Mapping[str, ApprovalDecision] = field(default_factory=dict)


class TaskQueue(Protocol):
    """What a hive worker needs from a queue."""

    durable: bool

    async def put(self, task: Task) -> None: ...

    async def claim(self, worker_id: str) -> Claim:
        """The next task, waiting for one; yields to other tasks once before it claims anything."""
        ...

    async def heartbeat(self, task_id: str, worker_id: str) -> bool: ...

    async def finish(self, task_id: str, worker_id: str, *, ok: bool, error: str = "") -> bool: ...

    async def remove(self, task_id: str) -> bool: ...

    async def park(self, task: Task, worker_id: str, request: ApprovalRequest) -> bool:
        """Set a claimed task aside, holding no worker, until ``request`` is decided."""
        ...

    async def decide(self, task_id: str, decision: ApprovalDecision) -> ApprovalRequest | None:
        """Answer a parked task's pending call and queue it again; None when it is not awaiting approval."""
        ...

    async def pending(self, task_id: str) -> ApprovalRequest | None:
        """The call a parked task waits to have approved, or None."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class LocalQueue:
    """The in-process prioritizer behind the queue protocol."""

    durable = False

    def __init__(self, prioritizer: Prioritizer) -> None:
        self.prioritizer = prioritizer
        self._parked: dict[str, tuple[Task, ApprovalRequest]] = {}
        self._decisions: dict[str, dict[str, ApprovalDecision]] = {}

    async def put(self, task: Task) -> None:
        self.prioritizer.put(task)

    async def claim(self, worker_id: str) -> Claim:
        await anyio.lowlevel.checkpoint()  # let others run first (see TaskQueue.claim)
        task = await self.prioritizer.claim()
        return Claim(task, decisions=dict(self._decisions.get(task.id, {})))

    async def heartbeat(self, task_id: str, worker_id: str) -> bool:
        return True

    async def finish(self, task_id: str, worker_id: str, *, ok: bool, error: str = "") -> bool:
        (self.prioritizer.complete if ok else self.prioritizer.fail)(task_id)
        self._decisions.pop(task_id, None)
        return True

    async def remove(self, task_id: str) -> bool:
        if self._parked.pop(task_id, None) is not None:
            self._decisions.pop(task_id, None)
            return True
        return self.prioritizer.remove(task_id)

    async def park(self, task: Task, worker_id: str, request: ApprovalRequest) -> bool:
        self._parked[task.id] = (task, request)
        return True

    async def decide(self, task_id: str, decision: ApprovalDecision) -> ApprovalRequest | None:
        parked = self._parked.get(task_id)
        if parked is None:
            return None
        task, request = parked
        self.prioritizer.put(task)  # QueueFull leaves the task parked and undecided
        del self._parked[task_id]
        self._decisions.setdefault(task_id, {})[request.call_key] = decision
        return request

    async def pending(self, task_id: str) -> ApprovalRequest | None:
        parked = self._parked.get(task_id)
        return parked[1] if parked is not None else None

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
            fair_share=settings.queue_fair_share,
        )

    async def put(self, task: Task) -> None:
        await self._queue.put(task)

    @property
    def engine(self) -> Any:
        """The queue's database engine (the idempotency ledger lives there too)."""
        return self._queue.sync.engine

    async def claim(self, worker_id: str) -> Claim:
        lease = (await self._queue.claim_wait(worker_id, 1, poll_s=self.poll_s))[0]
        decisions = (lease.approval or {}).get("decisions", {})
        return Claim(lease.task, self.lease_s, {k: ApprovalDecision.model_validate(v) for k, v in decisions.items()})

    async def heartbeat(self, task_id: str, worker_id: str) -> bool:
        return await self._queue.heartbeat(task_id, worker_id)

    async def finish(self, task_id: str, worker_id: str, *, ok: bool, error: str = "") -> bool:
        if ok:
            return await self._queue.complete(task_id, worker_id)
        return await self._queue.fail(task_id, worker_id, error=error)

    async def remove(self, task_id: str) -> bool:
        return await self._queue.remove(task_id)

    async def park(self, task: Task, worker_id: str, request: ApprovalRequest) -> bool:
        return await self._queue.park(task.id, worker_id, request.model_dump(mode="json"))

    async def decide(self, task_id: str, decision: ApprovalDecision) -> ApprovalRequest | None:
        decided = await self._queue.decide(task_id, decision.model_dump(mode="json"))
        return ApprovalRequest.model_validate(decided) if decided is not None else None

    async def pending(self, task_id: str) -> ApprovalRequest | None:
        pending = await self._queue.pending(task_id)
        return ApprovalRequest.model_validate(pending) if pending is not None else None

    def __len__(self) -> int:
        return len(self._queue.sync)

    def close(self) -> None:
        self._queue.close()


def open_queue(settings: Settings) -> TaskQueue:
    """The queue ``settings.queue`` names (``memory``, ``sqlite`` or ``postgres``)."""
    if settings.queue == "memory":
        prioritizer = Prioritizer(
            max_size=settings.queue_max, aging_s=settings.queue_aging_s, fair_share=settings.queue_fair_share
        )
        return LocalQueue(prioritizer)
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
