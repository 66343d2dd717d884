"""The ``episodes`` table: generic remembered events with their embedding, recalled by scope.

Registered on the shared :class:`~mcphive.memory._tables.Base` (``_tables`` imports this module
at its end) so that the Alembic environment and the schema test see it.

The embedding is stored as raw float32 bytes, not as a vector column: Debian's PostgreSQL 15
ships without pgvector, a MiniLM vector is only 384 floats (1.5 KiB), and recall always narrows
to one tenant's scope with indexed columns first, then scores that slice with numpy in memory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ._tables import Base

__all__ = ["EpisodeRow"]


class EpisodeRow(Base):
    """One episode: what happened (``text``), to whom (scope columns), when, and how much it matters."""

    __tablename__ = "episodes"

    # Insertion order: episodes recorded together often share a timestamp (the turns of one
    # conversation session), and their order still matters for neighbour expansion.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(128))
    workspace: Mapped[str] = mapped_column(Text, default="")
    agent: Mapped[str] = mapped_column(String(64), default="")
    # The task or conversation the episode belongs to.
    thread: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(32), default="note")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    outcome: Mapped[str] = mapped_column(String(32), default="")
    # "metadata" is reserved on declarative classes; the column keeps the plain name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    # The consolidated note that summarises this episode; a note names itself, so that notes are
    # never consolidated again. Unset for episodes not consolidated yet.
    consolidated_in: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(None, "tenant", "thread", "created_at"),
        Index(None, "tenant", "agent", "created_at"),
        Index(None, "tenant", "created_at"),
    )
