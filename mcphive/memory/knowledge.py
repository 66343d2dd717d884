"""The knowledge base: durable (subject, predicate, object) facts, unique per tenant."""

from __future__ import annotations

from datetime import datetime

from anyio import to_thread
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from mcphive.errors import StoreError, UsageError
from mcphive.types import new_id, utcnow

from ._engine import transaction, writer
from ._tables import FactRow
from .episodic import EpisodicMemory
from .sync import SyncEpisodicMemory

__all__ = ["Fact", "KnowledgeBase", "SyncKnowledgeBase"]

# The column widths of the facts table; PostgreSQL enforces them, so check before writing.
_LIMITS = {"subject": 512, "predicate": 256, "object": 2048}


class Fact(BaseModel):
    """One fact: ``subject`` ``predicate`` ``object``, where it came from and how sure it is."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant: str
    subject: str
    predicate: str
    object: str
    source: str = ""
    confidence: float = 1.0
    created_at: datetime


def _fact(row: FactRow) -> Fact:
    return Fact(
        id=row.id,
        tenant=row.tenant,
        subject=row.subject,
        predicate=row.predicate,
        object=row.obj,
        source=row.source,
        confidence=row.confidence,
        created_at=row.created_at,
    )


def _check(subject: str, predicate: str, obj: str, confidence: float) -> None:
    for name, value in (("subject", subject), ("predicate", predicate), ("object", obj)):
        if not value.strip():
            raise UsageError(f"a fact needs a non-empty {name}")
        if len(value) > _LIMITS[name]:
            raise UsageError(f"fact {name} is {len(value)} characters; keep it under {_LIMITS[name]}")
    if not 0.0 <= confidence <= 1.0:
        raise UsageError(f"fact confidence {confidence} is out of range; give a value from 0 to 1")


def _engine_of(memory_or_engine: EpisodicMemory | SyncEpisodicMemory | Engine) -> Engine:
    if isinstance(memory_or_engine, Engine):
        return memory_or_engine
    return memory_or_engine.engine


class SyncKnowledgeBase:
    """The blocking knowledge base; :class:`KnowledgeBase` runs it off the event loop.

    Args:
        memory_or_engine: an open episodic memory (its engine and tables are shared), or an
            engine whose database is already migrated.
    """

    def __init__(self, memory_or_engine: EpisodicMemory | SyncEpisodicMemory | Engine) -> None:
        self._engine = _engine_of(memory_or_engine)
        self._writer = writer(self._engine)

    def assert_fact(
        self,
        subject: str,
        predicate: str,
        obj: str,
        *,
        source: str = "",
        confidence: float = 1.0,
        tenant: str = "default",
    ) -> Fact:
        """Store a fact, or refresh the source and confidence of the same fact stored before.

        Raises:
            UsageError: an empty or over-long part, or a confidence outside 0..1.
        """
        _check(subject, predicate, obj, confidence)
        # Two processes may insert the same new fact at once (PostgreSQL); the loser retries as an update.
        for attempt in range(2):
            try:
                return self._upsert(tenant, subject, predicate, obj, source, confidence)
            except StoreError as e:
                if attempt or not isinstance(e.__cause__, IntegrityError):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _upsert(self, tenant: str, subject: str, predicate: str, obj: str, source: str, confidence: float) -> Fact:
        key = (FactRow.tenant == tenant, FactRow.subject == subject, FactRow.predicate == predicate, FactRow.obj == obj)
        with transaction(self._writer, f"assert the fact {subject!r} {predicate!r} {obj!r}") as session:
            fact_id = session.scalar(select(FactRow.id).where(*key))
            if fact_id is None:
                fact_id = new_id()
                row = {"id": fact_id, "tenant": tenant, "subject": subject, "predicate": predicate, "obj": obj}
                session.execute(
                    insert(FactRow), [{**row, "source": source, "confidence": confidence, "created_at": utcnow()}]
                )
            else:
                session.execute(
                    update(FactRow).where(FactRow.id == fact_id).values(source=source, confidence=confidence),
                    execution_options={"synchronize_session": False},
                )
            return _fact(session.get_one(FactRow, fact_id))

    def query(self, subject: str | None = None, predicate: str | None = None, *, tenant: str = "default") -> list[Fact]:
        """The tenant's facts matching ``subject`` and ``predicate`` (``None`` matches any), oldest first."""
        statement = select(FactRow).where(FactRow.tenant == tenant)
        if subject is not None:
            statement = statement.where(FactRow.subject == subject)
        if predicate is not None:
            statement = statement.where(FactRow.predicate == predicate)
        statement = statement.order_by(FactRow.created_at, FactRow.id)
        with transaction(self._engine, "query facts") as session:
            return [_fact(row) for row in session.scalars(statement)]


class KnowledgeBase:
    """Durable facts shared by every agent, stored next to the episodic memory.

    Args:
        memory_or_engine: an open episodic memory (its engine and tables are shared), or an
            engine whose database is already migrated.
    """

    def __init__(self, memory_or_engine: EpisodicMemory | SyncEpisodicMemory | Engine) -> None:
        self.sync = SyncKnowledgeBase(memory_or_engine)

    async def assert_fact(
        self,
        subject: str,
        predicate: str,
        obj: str,
        *,
        source: str = "",
        confidence: float = 1.0,
        tenant: str = "default",
    ) -> Fact:
        """Store a fact, or refresh the source and confidence of the same fact stored before."""
        return await to_thread.run_sync(
            lambda: self.sync.assert_fact(subject, predicate, obj, source=source, confidence=confidence, tenant=tenant)
        )

    async def query(
        self, subject: str | None = None, predicate: str | None = None, *, tenant: str = "default"
    ) -> list[Fact]:
        """The tenant's facts matching ``subject`` and ``predicate`` (``None`` matches any), oldest first."""
        return await to_thread.run_sync(lambda: self.sync.query(subject, predicate, tenant=tenant))
