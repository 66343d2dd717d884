"""The SQL of the durable queue's put, claim and reclaim, one builder per statement.

The claim order is computed in SQL so that every worker process, on every host, agrees on it:

1. effective rank: the class rank (critical 0 ... low 3) minus one for every whole ``aging_s``
   the task has waited, so no class starves;
2. earliest deadline first among tasks of equal effective rank (tasks without one last);
3. fair share (on by default): the lower *turn* first, so tenants take turns;
4. first in, first out (by enqueue time, then by insertion).

A task's turn is its round in its tenant's line of its class, fixed when it is put: one more
than the newest *live* (queued, claimed or awaiting approval) task of the same tenant and class,
and at least the lowest turn still queued in the class, so a tenant that arrives late starts
level with the others' next tasks instead of behind their backlog. Turns therefore rise with
enqueue order within a (class, tenant), which keeps the claim's shortlist exact. With fair share
off, step 3 is skipped and tenants are served first come, first served.

Aging counts in whole periods, as :class:`~mcphive.router.prioritizer.Prioritizer` does, so that
tasks of one class enqueued at different moments share an effective rank and the deadline and
the turn can order them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Float,
    Integer,
    Select,
    String,
    Table,
    Update,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy import cast as sql_cast

from mcphive.memory._queue_tables import AgentSlotRow, QueueRow
from mcphive.types import Priority

__all__ = [
    "AGENT_SLOTS",
    "LIVE_STATES",
    "QUEUE",
    "claim_statement",
    "live_slots",
    "pairs_statement",
    "reclaim_statement",
    "shortlist_statement",
    "turn_basis_statement",
]

QUEUE = cast(Table, QueueRow.__table__)
_C = QUEUE.c
AGENT_SLOTS = cast(Table, AgentSlotRow.__table__)
# Inline, not a bound parameter: the planners match it against the partial index's predicate
# and against column statistics, which they cannot do for a parameter's unknown value.
_QUEUED: ColumnElement[Any] = literal_column("'queued'")
_RANKS = sorted(p.rank for p in Priority)
LIVE_STATES = ("queued", "claimed", "awaiting_approval")
"""States a task can be queued again from; a put's turn follows the newest of them."""


def _effective_rank(dialect: str) -> ColumnElement[Any]:
    periods = (bindparam("now", type_=Float) - _C.enqueued_at) / bindparam("aging_s", type_=Float)
    # SQLite has no floor() without its optional math functions; waited time is >= 0, where
    # the cast's truncation equals floor. PostgreSQL's integer cast would round instead.
    whole = func.floor(periods) if dialect == "postgresql" else sql_cast(periods, Integer)
    return _C.rank - whole


def _bind_rank(name: str) -> BindParameter[int]:
    return bindparam(name, type_=Integer)


def _bind_tenant(name: str) -> BindParameter[str]:
    return bindparam(name, type_=String)


def _tenant_walk(rank: Any, name: str) -> CTE:
    """The tenants with queued rows of class ``rank``, one index seek each (a loose index scan)."""
    where = (_C.state == _QUEUED, _C.rank == rank)
    # ORDER BY ... LIMIT 1 rather than min(): one seek on both backends even before PostgreSQL has statistics.
    first = select(_C.tenant).where(*where).order_by(_C.tenant).limit(1).scalar_subquery()
    walk = select(first.label("tenant")).cte(name, recursive=True)
    following = select(_C.tenant).where(*where, _C.tenant > walk.c.tenant).order_by(_C.tenant).limit(1)
    return walk.union_all(select(following.scalar_subquery()).where(walk.c.tenant.is_not(None)))


def pairs_statement() -> CompoundSelect[Any]:
    """Each (class rank, tenant) that has queued rows: what :func:`shortlist_statement` reads the heads of."""
    walks = [(rank, _tenant_walk(rank, f"tenants_{rank}")) for rank in _RANKS]
    return union_all(
        *(select(literal(rank).label("rank"), walk.c.tenant).where(walk.c.tenant.is_not(None)) for rank, walk in walks)
    )


@lru_cache(maxsize=128)
def shortlist_statement(dialect: str, pairs: int, excluded_agents: bool) -> CompoundSelect[Any]:
    """The rows that can be among the best ``:k``: each (class, tenant)'s ``:k`` oldest, and every row with a deadline.

    Bind ``rank0``, ``tenant0`` ... for the ``pairs`` pairs :func:`pairs_statement` found.
    Returns each row's key and the columns of the claim order, so the caller can narrow it down.

    Exact: a row without a deadline is preceded in claim order by every row of its class and
    tenant that precedes it in (enqueued_at, seq) order (such rows never have a higher effective
    rank, never a higher turn, and tie-break before it), so if it is among the best ``k`` it is
    among its (class, tenant)'s ``k`` oldest. Rows with a deadline are all taken, so they should
    stay a minority. Each part is a short index range scan instead of a sort of the whole queue.
    """
    columns = (_C.seq, _C.rank, _C.enqueued_at, _C.deadline, _C.turn)
    heads = [
        select(*columns)
        .where(*_waiting(excluded_agents), _C.rank == _bind_rank(f"rank{i}"), _C.tenant == _bind_tenant(f"tenant{i}"))
        .order_by(_C.enqueued_at, _C.seq)
        .limit(bindparam("k", type_=Integer))
        .subquery()
        for i in range(pairs)
    ]
    # The partial index on rows with a deadline is the one to read. Given an index on state to
    # choose instead, SQLite walks every queued row through it, so there the state test is hidden
    # from its planner; PostgreSQL's picks the small partial index by itself (and, with the test
    # hidden, scans the whole table while its statistics are young).
    waiting = _waiting(excluded_agents)
    if dialect == "sqlite":
        waiting = [func.coalesce(_C.state, "") == _QUEUED, *waiting[1:]]
    with_deadline = select(*columns).where(*waiting, _C.deadline.is_not(None))
    return union_all(*(select(*head.c) for head in heads), with_deadline)


def turn_basis_statement() -> Select[Any]:
    """What a put of class ``:rank`` for ``:tenant`` bases its turns on, in one round trip.

    ``floor``: the lowest turn still queued in the class; each tenant's oldest queued row has its
    lowest, so one seek per tenant finds it. ``last``: the turn of the tenant's newest live row of
    the class; turns rise with enqueue order, so the newest row in each live state has that
    state's highest. Either is NULL when there is no such row.
    """
    rank, tenant = _bind_rank("rank"), _bind_tenant("tenant")
    walk = _tenant_walk(rank, "tenants")
    head = (
        select(_C.turn)
        .where(_C.state == _QUEUED, _C.rank == rank, _C.tenant == walk.c.tenant)
        .order_by(_C.enqueued_at, _C.seq)
        .limit(1)
        .scalar_subquery()
    )
    floor = select(func.min(head)).where(walk.c.tenant.is_not(None)).scalar_subquery()
    newest = [
        select(_C.turn)
        .where(_C.state == state, _C.rank == rank, _C.tenant == tenant)
        .order_by(_C.enqueued_at.desc(), _C.seq.desc())
        .limit(1)
        .subquery()
        for state in LIVE_STATES
    ]
    live = union_all(*(select(row.c.turn) for row in newest)).subquery()
    last = select(func.max(live.c.turn)).scalar_subquery()
    return select(floor.label("floor"), last.label("last"))


def _waiting(excluded_agents: bool) -> list[ColumnElement[bool]]:
    conditions = [_C.state == _QUEUED]
    if excluded_agents:
        conditions.append(_C.agent.is_(None) | _C.agent.not_in(bindparam("full", expanding=True)))
    return conditions


def claim_statement(
    dialect: str, *, excluded_agents: bool = False, shortlist: bool = True, fair_share: bool = True
) -> Update:
    """``UPDATE`` the best ``:n`` queued rows to claimed by ``:worker`` and return them.

    One statement, so the pick and the update share a transaction: PostgreSQL locks the picked
    rows with ``FOR UPDATE SKIP LOCKED`` (concurrent claimers pass over them instead of waiting);
    SQLite runs it under the write lock its ``BEGIN IMMEDIATE`` took. The pick is a
    materialised CTE joined by key, so the ``LIMIT`` is evaluated exactly once.

    With ``shortlist`` the pick sorts only the keys bound as ``shortlist`` (the best of what
    :func:`shortlist_statement` returned); without, the whole queue: the fallback for when
    candidates locked by other claimers left the batch short. ``fair_share`` puts the turn
    between the deadline and the enqueue time in the order.

    Binds: ``now``, ``aging_s``, ``n``, ``worker``, ``expires``; ``shortlist`` with ``shortlist``; with
    ``excluded_agents``, also ``full`` (expanding: agents at their concurrency limit).
    """
    if shortlist:
        # Literal keys, fetched by a statement of their own, and a state test no index can serve:
        # both planners then read the keys by primary key. Otherwise they trust the (on a queue
        # table, usually stale) statistics that call state = 'queued' selective, and scan it.
        waiting = [func.coalesce(_C.state, "") == "queued", *_waiting(excluded_agents)[1:]]
        pick = select(_C.seq).where(*waiting, _C.seq.in_(bindparam("shortlist", expanding=True)))
    else:
        pick = select(_C.seq).where(*_waiting(excluded_agents))
    fairness = (_C.turn,) if fair_share else ()
    order = (_effective_rank(dialect), _C.deadline.asc().nulls_last(), *fairness, _C.enqueued_at, _C.seq)
    pick = pick.order_by(*order).limit(bindparam("n"))
    picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
    now = bindparam("now", type_=Float)
    return (
        QUEUE.update()
        .where(_C.seq == picked.c.seq, _C.state == "queued")
        .values(
            state="claimed",
            lease_owner=bindparam("worker"),
            lease_expires_at=bindparam("expires", type_=Float),
            heartbeat_at=now,
            attempts=_C.attempts + 1,
        )
        .returning(
            _C.task_id, _C.payload, _C.attempts, _C.rank, _C.enqueued_at, _C.deadline, _C.turn, _C.seq, _C.approval
        )
    )


def reclaim_statement() -> Update:
    """Re-queue claimed rows whose lease ran out before ``:now``; fail those claimed ``:max_attempts`` times.

    A worker that died stops heartbeating, its lease expires, and the next claim puts the task
    back in line (its attempt count already says how often it was handed out).
    """
    now = bindparam("now", type_=Float)
    expired = (
        select(_C.seq)
        .where(_C.state == "claimed", _C.lease_expires_at < now)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    exhausted = _C.attempts >= bindparam("max_attempts")
    return (
        QUEUE.update()
        .where(_C.seq.in_(expired))
        .values(
            state=case((exhausted, "failed"), else_="queued"),
            lease_owner=None,
            lease_expires_at=None,
            finished_at=case((exhausted, now), else_=None),
            error=case(
                (exhausted, "the lease expired on every attempt: the workers running it died or stalled"),
                else_=_C.error,
            ),
        )
    )


def live_slots(now: Any) -> Select[Any]:
    """``(holder, agent)`` of every agent slot whose owner is claimed under a lease that has not expired.

    ``now`` is a value or a bound parameter; see :mod:`mcphive.router.slots`.
    """
    return (
        select(AGENT_SLOTS.c.holder, AGENT_SLOTS.c.agent)
        .join(QUEUE, _C.task_id == AGENT_SLOTS.c.owner)
        .where(_C.state == "claimed", _C.lease_expires_at >= now)
    )
