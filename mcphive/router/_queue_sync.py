"""The blocking durable task queue; :mod:`mcphive.router.queue_sql` is its public face.

The prioritizer's ``put / claim / complete / fail`` seam, persisted with SQLAlchemy.

SQLite by default (one host, many processes), PostgreSQL to scale out (many ``mcphive worker``
processes on many hosts). A claim hands a task out under a *lease*: the worker heartbeats to
keep it, and completes or fails it; only the lease's owner may. A task whose worker died is
claimable again once its lease expires, until it has been handed out ``max_attempts`` times.
The claim order (class rank with aging, deadline, fair share between tenants, FIFO) is in
:mod:`._queue_statements`.

:class:`SyncDurableQueue` is the blocking implementation; :class:`DurableQueue` runs each of
its methods in a worker thread (``.sync`` reaches the blocking one). Times are UNIX seconds on
the queue's clock; pass ``clock`` to test aging and expiry without waiting.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import Connection, Engine, Integer, bindparam, func, select, text, union
from sqlalchemy.exc import IntegrityError

from mcphive.errors import InvalidTask, QueueFull, UsageError
from mcphive.memory._engine import core_transaction, create_store_engine, migrate, writer
from mcphive.types import Task

from ._queue_statements import (
    AGENT_SLOTS,
    QUEUE,
    claim_statement,
    live_slots,
    pairs_statement,
    reclaim_statement,
    shortlist_statement,
    turn_basis_statement,
)
from .prioritizer import QueueStats

__all__ = ["Lease", "QueueEntry", "SyncDurableQueue"]

log = logging.getLogger(__name__)

_C = QUEUE.c
# Arbitrary but fixed: serialises puts on PostgreSQL so that the size bound holds across hosts.
_PG_PUT_LOCK = 0x6D717075
_RANK_NAMES = {0: "critical", 1: "high", 2: "normal", 3: "low"}

# Built once: a statement built per call costs more than SQLite takes to run it.
_INSERT = QUEUE.insert()
_WAITING = select(_C.seq).where(_C.state == "queued")
_COUNT_WAITING = select(func.count()).select_from(_WAITING.subquery())
# Counting stops at the bound: a put costs O(max_size), not O(queue length).
_COUNT_WAITING_UP_TO = select(func.count()).select_from(_WAITING.limit(bindparam("up_to", type_=Integer)).subquery())
# The claimed rows ``:ids`` that ``:worker`` still holds: only a lease's owner may change its task.
_OWNED = QUEUE.update().where(
    _C.task_id.in_(bindparam("ids", expanding=True)), _C.state == "claimed", _C.lease_owner == bindparam("worker")
)
_COMPLETE = _OWNED.values(state="done", lease_owner=None, lease_expires_at=None, finished_at=bindparam("finished"))


def _set_owned(session: Connection, task_id: str, worker_id: str, values: Mapping[str, Any]) -> bool:
    """Change ``task_id`` to ``values`` if ``worker_id`` still holds its lease; True when it did."""
    result = session.execute(_OWNED.values(values), {"ids": [task_id], "worker": worker_id})
    return int(getattr(result, "rowcount", 0)) == 1


@dataclass(frozen=True)
class Lease:
    """A claimed task and the terms it was handed out on."""

    task: Task
    worker_id: str
    attempt: int
    """1 on the first hand-out, 2 after one expired lease, ..."""
    expires_at: float
    deadline: float | None = None
    approval: dict[str, Any] | None = None
    """The task's approval record (``pending`` call and ``decisions`` so far), if it ever asked for one."""


@dataclass(frozen=True)
class QueueEntry:
    """Where one task stands in the queue."""

    task_id: str
    state: str
    """``queued``, ``claimed``, ``awaiting_approval``, ``done`` or ``failed``."""
    attempts: int
    """Hand-outs since the task was queued, or since its last approval decision."""
    lease_owner: str | None
    lease_expires_at: float | None
    error: str | None


class SyncDurableQueue:
    """A bounded, leased priority queue in a SQL database.

    Args:
        engine: the database, already migrated (see :meth:`open`).
        max_size: most tasks waiting; :meth:`put` raises :class:`QueueFull` beyond it.
        aging_s: seconds of waiting that lift a task by one priority class.
        lease_s: default lease length of :meth:`claim` and :meth:`heartbeat`.
        max_attempts: hand-outs after which an expired lease fails the task instead of re-queueing it.
        agent_limits: most tasks claimed at once per agent name (others unlimited).
        fair_share: tenants take turns among tasks of equal effective rank and deadline; False
            serves them first come, first served. Every process sharing the queue should agree.
        clock: UNIX seconds; injectable for tests.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_size: int = 1000,
        aging_s: float = 30.0,
        lease_s: float = 60.0,
        max_attempts: int = 3,
        agent_limits: Mapping[str, int] | None = None,
        fair_share: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if aging_s <= 0 or lease_s <= 0 or max_attempts < 1 or max_size < 1:
            raise UsageError("queue settings must be positive: max_size, aging_s, lease_s and max_attempts >= 1")
        self.engine = engine
        self._writer = writer(engine)
        self._max_size, self._aging_s, self._lease_s = max_size, aging_s, lease_s
        self._max_attempts = max_attempts
        self._limits = dict(agent_limits or {})
        self._fair_share = fair_share
        self._clock = clock
        self._dialect = engine.dialect.name
        # Keyed by (agents excluded, shortlist): see claim_statement.
        self._claims = {
            (excluding, shortlist): claim_statement(
                self._dialect, excluded_agents=excluding, shortlist=shortlist, fair_share=fair_share
            )
            for excluding in (False, True)
            for shortlist in (False, True)
        }
        self._pairs = pairs_statement()
        self._turn_basis = turn_basis_statement()
        self._reclaim = reclaim_statement()

    @classmethod
    def open(cls, url: str, **options: Any) -> Self:
        """Open the database at ``url`` and migrate it to the newest schema; ``options`` as for the constructor.

        Raises:
            StoreError: the URL is invalid, the database cannot be reached, or migration failed.
        """
        engine = create_store_engine(url)
        try:
            migrate(engine)
            return cls(engine, **options)
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Close every pooled connection; the queue must not be used afterwards."""
        self.engine.dispose()

    def __len__(self) -> int:
        with core_transaction(self.engine, "count the queued tasks") as session:
            return self._queued(session)

    def _queued(self, session: Connection, *, up_to: int | None = None) -> int:
        if up_to is None:
            return int(session.scalar(_COUNT_WAITING) or 0)
        return int(session.scalar(_COUNT_WAITING_UP_TO, {"up_to": up_to}) or 0)

    def put(self, task: Task, *, deadline: float | None = None) -> None:
        """Queue ``task``; ``deadline`` (UNIX seconds) orders it before later deadlines of equal rank.

        Raises:
            QueueFull: ``max_size`` tasks are waiting already.
            InvalidTask: a task with this id is in the queue already.
            StoreError: the database failed.
        """
        self.put_many([task], deadlines=[deadline])

    def put_many(self, tasks: Sequence[Task], *, deadlines: Sequence[float | None] | None = None) -> None:
        """Queue ``tasks`` in one transaction, all or none, in their order; see :meth:`put`."""
        if deadlines is not None and len(deadlines) != len(tasks):
            raise UsageError(f"put_many got {len(tasks)} tasks but {len(deadlines)} deadlines; pass one per task")
        if tasks:
            self._insert(tasks, deadlines)

    def put_to(
        self, task: Task, worker_id: str, *, deadline: float | None = None, lease_s: float | None = None
    ) -> Lease | None:
        """Queue ``task`` and, when no other task is waiting, hand it to ``worker_id`` in the same transaction.

        The hand-off is the claim ``worker_id`` would have made next (nothing waits ahead of the task),
        without its queries: the row is written claimed, under a lease, as a claim leaves it. A task
        whose agent has a concurrency limit is never handed off (its limit is counted at claims).

        Returns:
            The lease, or None when the task was queued for a later claim instead.

        Raises:
            QueueFull, InvalidTask, StoreError: as :meth:`put`.
        """
        return self._insert([task], [deadline], hand_to=(worker_id, lease_s if lease_s is not None else self._lease_s))

    def _insert(
        self,
        tasks: Sequence[Task],
        deadlines: Sequence[float | None] | None,
        *,
        hand_to: tuple[str, float] | None = None,
    ) -> Lease | None:
        now = self._clock()
        rows = [
            {
                "task_id": task.id,
                "payload": task.model_dump(mode="json"),
                "rank": task.priority.rank,
                "tenant": task.principal.tenant,
                "agent": task.agent,
                "enqueued_at": now,
                "deadline": deadlines[i] if deadlines is not None else None,
                "state": "queued",
                "attempts": 0,
            }
            for i, task in enumerate(tasks)
        ]
        with core_transaction(self._writer, "queue tasks") as session:
            # The lock also makes the turns below exact: no other put runs in between.
            if self._dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_PUT_LOCK})
            waiting = self._queued(session, up_to=self._max_size)
            if waiting + len(rows) > self._max_size:
                raise QueueFull(
                    f"the durable task queue is full ({waiting} or more waiting, at most {self._max_size}); "
                    "retry later, add workers or raise the queue size"
                )
            self._assign_turns(session, rows)
            lease = None
            if hand_to is not None and waiting == 0 and tasks[0].agent not in self._limits:
                worker_id, lease_s = hand_to
                lease = Lease(tasks[0], worker_id, 1, now + lease_s, deadlines[0] if deadlines is not None else None)
                rows[0].update(
                    state="claimed",
                    lease_owner=worker_id,
                    lease_expires_at=lease.expires_at,
                    heartbeat_at=now,
                    attempts=1,
                )
            try:
                session.execute(_INSERT, rows)
            except IntegrityError as e:
                raise InvalidTask(
                    "a task with one of these ids is already in the queue; give each task a new id"
                ) from e
        return lease

    def _assign_turns(self, session: Connection, rows: list[dict[str, Any]]) -> None:
        """Give each row its turn in its tenant's line of its class (see :mod:`._queue_statements`)."""
        # Per (class, tenant) of the batch: (the class's lowest queued turn, the pair's newest live turn).
        basis: dict[tuple[int, str], tuple[int, int]] = {}
        for row in rows:
            pair = (row["rank"], row["tenant"])
            if pair not in basis:
                found = session.execute(self._turn_basis, {"rank": pair[0], "tenant": pair[1]}).one()
                basis[pair] = (found.floor or 0, found.last or 0)
            floor, last = basis[pair]
            row["turn"] = max(last + 1, floor)
            basis[pair] = (floor, row["turn"])

    def claim(self, worker_id: str, *, lease_s: float | None = None) -> Lease | None:
        """Hand the next task to ``worker_id`` under a lease, or return None when nothing is waiting."""
        leases = self.claim_many(worker_id, 1, lease_s=lease_s)
        return leases[0] if leases else None

    def claim_many(self, worker_id: str, n: int, *, lease_s: float | None = None) -> list[Lease]:
        """Hand up to ``n`` tasks to ``worker_id`` at once, best first; expired leases are re-queued first.

        Raises:
            StoreError: the database failed.
        """
        now = self._clock()
        expires = now + (lease_s if lease_s is not None else self._lease_s)
        with core_transaction(self._writer, "claim tasks") as session:
            session.execute(self._reclaim, {"now": now, "max_attempts": self._max_attempts})
            params: dict[str, Any] = {"now": now, "aging_s": self._aging_s, "n": n, "worker": worker_id}
            if self._limits:
                n = self._limit_batch(session, params, n)
                if n == 0:
                    return []
            rows = self._pick(session, {**params, "n": n, "expires": expires})
        # RETURNING gives no order; hand the batch out best first.
        rows.sort(key=self._order(now))
        return [
            Lease(Task.model_validate(r.payload), worker_id, r.attempts, expires, r.deadline, r.approval) for r in rows
        ]

    def _order(self, now: float) -> Callable[[Any], tuple[float, ...]]:
        """The claim order of :mod:`._queue_statements` as a sort key of rows holding its columns."""

        def key(row: Any) -> tuple[float, ...]:
            # Divide, then floor, as the SQL does.
            rank = row.rank - math.floor((now - row.enqueued_at) / self._aging_s)
            deadline = row.deadline if row.deadline is not None else math.inf
            return (rank, deadline, row.turn if self._fair_share else 0, row.enqueued_at, row.seq)

        return key

    def _pick(self, session: Connection, params: dict[str, Any]) -> list[Any]:
        excluding, n = bool(params.get("full")), params["n"]
        # Room for the rows other claimers hold locked right now, which the shortlist still names.
        room = 4 * n + 16
        pairs = session.execute(self._pairs).all()
        rows: list[Any] = []
        if pairs:
            binds: dict[str, Any] = {}
            for i, (rank, tenant) in enumerate(pairs):
                binds.update({f"rank{i}": rank, f"tenant{i}": tenant})
            shortlist = shortlist_statement(self._dialect, len(pairs), excluding)
            # A row with a deadline can come twice: in its pair's oldest and with the deadlines.
            candidates = {row.seq: row for row in session.execute(shortlist, {**params, **binds, "k": room})}.values()
            # The claim then reads a bounded list of keys, however many tenants are waiting.
            keys = [row.seq for row in heapq.nsmallest(room, candidates, key=self._order(params["now"]))]
            if keys:
                rows = list(session.execute(self._claims[excluding, True], {**params, "shortlist": keys}).all())
        if pairs and len(rows) < n:  # no pairs: nothing is queued, and an idle worker's poll ends here
            rows += session.execute(self._claims[excluding, False], {**params, "n": n - len(rows)}).all()
        return rows

    def _limit_batch(self, session: Connection, params: dict[str, Any], n: int) -> int:
        """Exclude agents at their limit; shrink the batch so no limited agent can pass its limit."""
        if self._dialect == "postgresql":
            # Counting claimed rows is only exact while no other claimer counts at the same time.
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_PUT_LOCK + 1})
        # Runs of each limited agent: claimed tasks submitted for it (they take a slot when they start) and
        # runs holding a slot (routed tasks and plan steps too); a task in both is one run.
        limited = list(self._limits)
        claimed = select(_C.task_id.label("holder"), _C.agent).where(_C.state == "claimed", _C.agent.in_(limited))
        runs = union(claimed, live_slots(params["now"]).where(AGENT_SLOTS.c.agent.in_(limited))).subquery()
        counts: dict[str, int] = dict(session.execute(select(runs.c.agent, func.count()).group_by(runs.c.agent)).all())
        room = {agent: limit - counts.get(agent, 0) for agent, limit in self._limits.items()}
        params["full"] = [agent for agent, left in room.items() if left <= 0]
        open_rooms = [left for left in room.values() if left > 0]
        return int(min([n, *open_rooms]))

    def heartbeat(self, task_id: str, worker_id: str, *, lease_s: float | None = None) -> bool:
        """Extend ``worker_id``'s lease on ``task_id``; False when it holds the lease no longer (stop working)."""
        now = self._clock()
        values = {"lease_expires_at": now + (lease_s if lease_s is not None else self._lease_s), "heartbeat_at": now}
        return self._update_owned(task_id, worker_id, values, "extend a lease")

    def complete(self, task_id: str, worker_id: str) -> bool:
        """Mark ``task_id`` done; False (and nothing changes) when ``worker_id`` no longer holds its lease."""
        return self.complete_many([task_id], worker_id) == 1

    def complete_many(self, task_ids: Sequence[str], worker_id: str) -> int:
        """Mark several of ``worker_id``'s tasks done in one transaction; returns how many it still held."""
        params = {"ids": list(task_ids), "worker": worker_id, "finished": self._clock()}
        with core_transaction(self._writer, "complete tasks") as session:
            result = session.execute(_COMPLETE, params)
            return int(getattr(result, "rowcount", 0))

    def release(self, task_id: str, worker_id: str) -> bool:
        """Give ``worker_id``'s claimed task back unrun: queued again, this hand-out not counted as an attempt.

        Returns False (and changes nothing) when ``worker_id`` no longer holds the lease.
        """
        values = {"state": "queued", "lease_owner": None, "lease_expires_at": None, "attempts": _C.attempts - 1}
        return self._update_owned(task_id, worker_id, values, "give back a claimed task")

    def fail(self, task_id: str, worker_id: str, *, error: str = "", retry: bool = False) -> bool:
        """Mark ``task_id`` failed, or queue it again with ``retry`` while attempts remain.

        Returns False (and changes nothing) when ``worker_id`` no longer holds the lease.
        """
        with core_transaction(self._writer, "fail a task") as session:
            row = session.execute(
                select(_C.attempts).where(_C.task_id == task_id, _C.state == "claimed", _C.lease_owner == worker_id)
            ).first()
            if row is None:
                return False
            again = retry and row.attempts < self._max_attempts
            values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "error": error or None}
            values.update(state="queued") if again else values.update(state="failed", finished_at=self._clock())
            _set_owned(session, task_id, worker_id, values)
            return True

    def park(self, task_id: str, worker_id: str, pending: dict[str, Any]) -> bool:
        """Set ``worker_id``'s claimed task aside until its ``pending`` call is decided; the lease ends.

        The task leaves the claimed state (no worker holds it, no lease can expire) and is not
        claimable until :meth:`decide` queues it again. Returns False (and changes nothing) when
        ``worker_id`` no longer holds the lease.
        """
        with core_transaction(self._writer, "park a task awaiting approval") as session:
            row = session.execute(
                select(_C.approval).where(_C.task_id == task_id, _C.state == "claimed", _C.lease_owner == worker_id)
            ).first()
            if row is None:
                return False
            record = {"decisions": dict((row.approval or {}).get("decisions", {})), "pending": pending}
            values = {"state": "awaiting_approval", "lease_owner": None, "lease_expires_at": None, "approval": record}
            _set_owned(session, task_id, worker_id, values)
            return True

    def decide(self, task_id: str, decision: dict[str, Any]) -> dict[str, Any] | None:
        """Answer a parked task's pending call with ``decision`` and queue the task again, ahead by its age.

        Returns the pending call that was decided, or None when ``task_id`` is not awaiting approval.
        Decisions are kept with the task, keyed by the call's key, so the run that claims it next finds them.
        """
        with core_transaction(self._writer, "decide on a task awaiting approval") as session:
            row = session.execute(
                select(_C.approval).where(_C.task_id == task_id, _C.state == "awaiting_approval")
            ).first()
            if row is None or not (row.approval or {}).get("pending"):
                return None
            pending: dict[str, Any] = row.approval["pending"]
            decisions = {**row.approval.get("decisions", {}), pending["call_key"]: decision}
            values = {"state": "queued", "attempts": 0, "approval": {"pending": None, "decisions": decisions}}
            session.execute(QUEUE.update().where(_C.task_id == task_id, _C.state == "awaiting_approval").values(values))
            return pending

    def pending(self, task_id: str) -> dict[str, Any] | None:
        """The call ``task_id`` waits to have approved, or None when it is not awaiting approval."""
        with core_transaction(self.engine, "read a pending approval") as session:
            approval = session.scalar(select(_C.approval).where(_C.task_id == task_id, _C.state == "awaiting_approval"))
        pending = (approval or {}).get("pending")
        return pending if isinstance(pending, dict) else None

    def _update_owned(self, task_id: str, worker_id: str, values: dict[str, Any], what: str) -> bool:
        with core_transaction(self._writer, what) as session:
            return _set_owned(session, task_id, worker_id, values)

    def remove(self, task_id: str) -> bool:
        """Drop a queued (not yet claimed) or parked task; True if it was either."""
        with core_transaction(self._writer, "remove a task") as session:
            waiting = _C.state.in_(("queued", "awaiting_approval"))
            result = session.execute(QUEUE.delete().where(_C.task_id == task_id, waiting))
            return int(getattr(result, "rowcount", 0)) == 1

    def entry(self, task_id: str) -> QueueEntry | None:
        """Where ``task_id`` stands, or None when it was never queued (or was removed or purged)."""
        with core_transaction(self.engine, "read a queue entry") as session:
            row = session.execute(
                select(_C.task_id, _C.state, _C.attempts, _C.lease_owner, _C.lease_expires_at, _C.error).where(
                    _C.task_id == task_id
                )
            ).first()
        return None if row is None else QueueEntry(*row)

    def stats(self) -> QueueStats:
        """Counts by state, and queued tasks by priority class."""
        with core_transaction(self.engine, "count the queue") as session:
            by_state: dict[str, int] = dict(session.execute(select(_C.state, func.count()).group_by(_C.state)).all())
            queued = select(_C.rank, func.count()).where(_C.state == "queued").group_by(_C.rank)
            by_rank: dict[int, int] = dict(session.execute(queued).all())
        return QueueStats(
            queued=by_state.get("queued", 0),
            running=by_state.get("claimed", 0),
            completed=by_state.get("done", 0),
            failed=by_state.get("failed", 0),
            per_class={name: by_rank.get(rank, 0) for rank, name in _RANK_NAMES.items()},
        )

    def purge(self, finished_before: float) -> int:
        """Delete done and failed tasks that finished before ``finished_before``; returns how many."""
        with core_transaction(self._writer, "purge finished tasks") as session:
            result = session.execute(
                QUEUE.delete().where(_C.state.in_(("done", "failed")), _C.finished_at < finished_before)
            )
            return int(getattr(result, "rowcount", 0))
