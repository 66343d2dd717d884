"""The ORM table of the durable task queue (:mod:`mcphive.router.queue_sql`).

It lives with the memory tables so that one Alembic history and one metadata comparison cover
every table of the database. Times are UNIX seconds (``Float``), not datetimes: the claim query
computes waited time and lease expiry in SQL, and plain numbers do that arithmetic identically
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ._tables import Base

__all__ = ["AgentSlotRow", "QueueRow"]

_HAS_DEADLINE = text("deadline IS NOT NULL")
# PostgreSQL's planner prefers the partial index only when it holds just the queued rows.
_QUEUED_WITH_DEADLINE = text("state = 'queued' AND deadline IS NOT NULL")


class QueueRow(Base):
    """One task in the durable queue: its payload, its place in line and its lease."""

    __tablename__ = "task_queue"

    # An integer key gives FIFO order within equal rank and deadline, and cheap joins in the claim.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[dict[str, Any]]
    rank: Mapped[int] = mapped_column(Integer)
    tenant: Mapped[str] = mapped_column(String(128))
    turn: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    """The task's round in its tenant's line of its class: fair share alternates tenants by it."""
    agent: Mapped[str | None] = mapped_column(String(64))
    enqueued_at: Mapped[float] = mapped_column(Float)
    deadline: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(32))
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    approval: Mapped[dict[str, Any] | None]
    """``{"pending": ApprovalRequest | None, "decisions": {call_key: ApprovalDecision}}`` once a task asked."""

    __table_args__ = (
        # The claim reads the oldest queued rows of each (class, tenant) and the queued rows with a
        # deadline; a put reads the newest live row of its (class, tenant); the reclaim finds claimed
        # rows whose lease ran out; agent limits count claimed rows per agent.
        Index(None, "state", "rank", "tenant", "enqueued_at", "seq"),
        # Only rows with a deadline: the claim reads every queued one of them (on SQLite, finished
        # ones too until purge() drops them).
        Index(None, "deadline", sqlite_where=_HAS_DEADLINE, postgresql_where=_QUEUED_WITH_DEADLINE),
        Index(None, "state", "lease_expires_at"),
        Index(None, "state", "agent"),
    )


class AgentSlotRow(Base):
    """A run holding one of its agent's concurrency slots (settings ``agent_limits``; see :mod:`mcphive.router.slots`).

    The slot counts while ``owner``, the queued task the run belongs to (the task itself, or the plan a
    step is part of), is claimed under a lease that has not expired.
    """

    __tablename__ = "agent_slots"

    holder: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The run: a task id, or a plan step's task id."""
    agent: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index(None, "agent"),)
