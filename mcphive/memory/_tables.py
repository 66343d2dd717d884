"""The ORM tables of the episodic memory and the knowledge base.

The schema is owned by the Alembic migrations in ``migrations/versions``; these classes
must stay equal to them (a test compares the migrated database with this metadata).
Only portable types are used (``JSON``, ``Text``, timezone-aware ``DateTime``) so the same
tables work on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "FactRow", "LedgerRow", "RouteDecisionRow", "StepRow", "TaskRow", "ToolCallRow", "UTCDateTime"]

# Named constraints let future migrations (and SQLite's batch mode) refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite stores datetimes without a zone; values are normalised to UTC on the way in and
    get their UTC zone back on the way out, so comparisons and ordering stay correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        # A naive value is taken to be UTC already, the convention of mcphive.types.utcnow.
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata and type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(none_as_null=True),
        list[dict[str, Any]]: JSON(none_as_null=True),
        dict[str, float]: JSON(none_as_null=True),
    }


class TaskRow(Base):
    """One task (or subtask, when ``parent_id`` is set) and its outcome."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    workspace: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[str] = mapped_column(String(16))
    requested_agent: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    answer: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    tenant: Mapped[str] = mapped_column(String(128))
    # "user" is a reserved word in PostgreSQL; the column gets an unambiguous name.
    user_name: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(256), default="")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    model_calls: Mapped[int] = mapped_column(Integer, default=0)
    timings: Mapped[dict[str, float]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    parent_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("tasks.id", ondelete="CASCADE"))
    # Order of a subtask among its siblings; 0 for top-level tasks.
    position: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "tenant", "user_name", "created_at"),
        Index(None, "parent_id"),
    )


class RouteDecisionRow(Base):
    """One routing decision for a task; the newest one is the task's route."""

    __tablename__ = "route_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64), ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    runners_up: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class StepRow(Base):
    """One step of a task's agent loop; ``position`` is its place in ``TaskResult.steps``."""

    __tablename__ = "steps"

    task_id: Mapped[str] = mapped_column(String(64), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)


class ToolCallRow(Base):
    """One tool call of a step, keyed by its task, its step's position and its own position."""

    __tablename__ = "tool_calls"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step_position: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    server: Mapped[str] = mapped_column(String(256))
    tool: Mapped[str] = mapped_column(String(256))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[str] = mapped_column(Text, default="")
    structured: Mapped[dict[str, Any] | None]
    is_error: Mapped[bool] = mapped_column(Boolean, default=False)
    chosen_by: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)

    __table_args__ = (
        ForeignKeyConstraint(["task_id", "step_position"], ["steps.task_id", "steps.position"], ondelete="CASCADE"),
    )


class LedgerRow(Base):
    """One side-effecting tool call that completed, so that a resumed task does not repeat it."""

    __tablename__ = "tool_ledger"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    server: Mapped[str] = mapped_column(String(256))
    tool: Mapped[str] = mapped_column(String(256))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[str] = mapped_column(Text, default="")
    structured: Mapped[dict[str, Any] | None]
    is_error: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[float] = mapped_column(Float)


class FactRow(Base):
    """One knowledge-base triple over its validity time ``[valid_from, valid_to)``.

    A fact is never deleted: superseding or retracting it closes ``valid_to`` (and names the
    fact that replaced it in ``superseded_by``). At most one row per tenant and triple is open
    (``valid_to`` unset) at a time.
    """

    __tablename__ = "facts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(512))
    predicate: Mapped[str] = mapped_column(String(256))
    # "object" would shadow the builtin inside the class body; the column keeps the plain name.
    obj: Mapped[str] = mapped_column("object", String(2048))
    source: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime]
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]
    superseded_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(
            "uq_facts_open_tenant_subject_predicate_object",
            "tenant",
            "subject",
            "predicate",
            "object",
            unique=True,
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index(None, "tenant", "predicate"),
        Index(None, "tenant", "subject", "predicate"),
    )


from mcphive.memory import _episode_tables as _episode_tables  # noqa: E402  (registers the episodes table on Base)
from mcphive.memory import _queue_tables as _queue_tables  # noqa: E402  (registers the queue table on Base)
