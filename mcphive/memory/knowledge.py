"""The knowledge base: (subject, predicate, object) facts per tenant, with provenance and validity time.

A fact is valid over ``[valid_from, valid_to)``. Facts are never deleted: asserting a new object
for a *functional* predicate (one object at a time, e.g. ``owned_by``), or any assertion with
``supersede=True``, closes the facts it replaces (``valid_to`` set, ``superseded_by`` naming the
new fact), and :meth:`SyncKnowledgeBase.retract` closes a fact without a successor. Queries see
the facts valid now by default, those valid at an earlier moment with ``as_of``, or every
version with ``history=True``.

Example::

    kb = KnowledgeBase(memory, functional={"owned_by"})
    await kb.assert_fact("module:prices", "owned_by", "team:pricing", source="task:41")
    await kb.assert_fact("module:prices", "owned_by", "team:checkout", source="task:97")
    [now] = await kb.query("module:prices", "owned_by")                  # team:checkout
    [then] = await kb.query("module:prices", "owned_by", as_of=last_week)  # team:pricing
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from anyio import to_thread
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Engine, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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
    """One fact: ``subject`` ``predicate`` ``object``, where it came from, how sure it is and when it held.

    Attributes:
        source: provenance, e.g. the episode, task or document it was learnt from.
        valid_from: when the fact became true (by default, when it was asserted).
        valid_to: when it stopped being true; ``None`` while it still holds.
        superseded_by: the id of the fact that replaced it, when one did.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant: str
    subject: str
    predicate: str
    object: str
    source: str = ""
    confidence: float = 1.0
    created_at: datetime
    valid_from: datetime
    valid_to: datetime | None = None
    superseded_by: str | None = None

    def valid_at(self, moment: datetime) -> bool:
        """Whether the fact held at ``moment`` (an aware datetime)."""
        return self.valid_from <= moment and (self.valid_to is None or moment < self.valid_to)


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
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        superseded_by=row.superseded_by,
    )


def _check(subject: str, predicate: str, obj: str, confidence: float) -> None:
    for name, value in (("subject", subject), ("predicate", predicate), ("object", obj)):
        if not value.strip():
            raise UsageError(f"a fact needs a non-empty {name}")
        if len(value) > _LIMITS[name]:
            raise UsageError(f"fact {name} is {len(value)} characters; keep it under {_LIMITS[name]}")
    if not 0.0 <= confidence <= 1.0:
        raise UsageError(f"fact confidence {confidence} is out of range; give a value from 0 to 1")


def _aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise UsageError(f"{name} {moment.isoformat()} has no time zone; pass an aware datetime (e.g. in UTC)")
    return moment.astimezone(UTC) if moment is not None else None


def _engine_of(memory_or_engine: EpisodicMemory | SyncEpisodicMemory | Engine) -> Engine:
    if isinstance(memory_or_engine, Engine):
        return memory_or_engine
    return memory_or_engine.engine


def _valid_at(moment: datetime) -> ColumnElement[bool]:
    return (FactRow.valid_from <= moment) & or_(FactRow.valid_to.is_(None), FactRow.valid_to > moment)


class SyncKnowledgeBase:
    """The blocking knowledge base; :class:`KnowledgeBase` runs it off the event loop.

    Args:
        memory_or_engine: an open episodic memory (its engine and tables are shared), or an
            engine whose database is already migrated.
        functional: predicates that hold one object at a time per subject (``owned_by``,
            ``status``...): asserting a new object closes the previous one.
    """

    def __init__(
        self, memory_or_engine: EpisodicMemory | SyncEpisodicMemory | Engine, *, functional: Iterable[str] = ()
    ) -> None:
        self._engine = _engine_of(memory_or_engine)
        self._writer = writer(self._engine)
        self.functional = frozenset(functional)

    def assert_fact(
        self,
        subject: str,
        predicate: str,
        obj: str,
        *,
        source: str = "",
        confidence: float = 1.0,
        tenant: str = "default",
        supersede: bool | None = None,
        valid_from: datetime | None = None,
    ) -> Fact:
        """Store a fact, or refresh the source and confidence of the same fact while it still holds.

        Args:
            subject: what the fact is about, e.g. ``service:checkout``.
            predicate: the relation, e.g. ``depends_on``.
            obj: the other end, e.g. ``service:payments``.
            source: provenance (an episode, task or document id).
            confidence: how sure, 0..1.
            tenant: whose knowledge base.
            supersede: close the other open facts of this subject and predicate; ``None`` does so
                exactly when the predicate is functional.
            valid_from: when the fact became true (default: now); superseded facts end there.

        Raises:
            UsageError: an empty or over-long part, a confidence outside 0..1, a naive
                ``valid_from``, or a ``valid_from`` before the start of a fact it would supersede.
        """
        _check(subject, predicate, obj, confidence)
        start = _aware(valid_from, "valid_from")
        replace = predicate in self.functional if supersede is None else supersede
        # Two PostgreSQL writers may insert the same new fact at once; the loser retries and finds it.
        for attempt in range(2):
            try:
                return self._assert(tenant, subject, predicate, obj, source, confidence, replace, start)
            except StoreError as e:
                if attempt or not isinstance(e.__cause__, IntegrityError):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _lock(self, session: Session, tenant: str, subject: str, predicate: str) -> None:
        # SQLite writers already hold the database's write lock; PostgreSQL writers of one subject
        # and predicate queue on an advisory lock, so two supersessions cannot both stay open.
        if self._engine.dialect.name == "postgresql":
            key = json.dumps(["facts", tenant, subject, predicate])
            session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})

    def _assert(
        self,
        tenant: str,
        subject: str,
        predicate: str,
        obj: str,
        source: str,
        confidence: float,
        replace: bool,
        start: datetime | None,
    ) -> Fact:
        pair = (FactRow.tenant == tenant, FactRow.subject == subject, FactRow.predicate == predicate)
        with transaction(self._writer, f"assert the fact {subject!r} {predicate!r} {obj!r}") as session:
            self._lock(session, tenant, subject, predicate)
            now = utcnow()
            start = start or now
            open_rows = list(session.scalars(select(FactRow).where(*pair, FactRow.valid_to.is_(None))))
            same = next((row for row in open_rows if row.obj == obj), None)
            if same is not None:
                fact_id = same.id
                session.execute(
                    update(FactRow).where(FactRow.id == fact_id).values(source=source, confidence=confidence),
                    execution_options={"synchronize_session": False},
                )
            else:
                fact_id = new_id()
                row = {"id": fact_id, "tenant": tenant, "subject": subject, "predicate": predicate, "obj": obj}
                session.execute(
                    insert(FactRow),
                    [{**row, "source": source, "confidence": confidence, "created_at": now, "valid_from": start}],
                )
            if replace:
                self._close(session, [r for r in open_rows if r.obj != obj], start, fact_id)
            return _fact(session.get_one(FactRow, fact_id, populate_existing=True))

    @staticmethod
    def _close(session: Session, rows: list[FactRow], end: datetime, successor: str | None) -> None:
        for row in rows:
            if end < row.valid_from:
                raise UsageError(
                    f"the fact {row.subject!r} {row.predicate!r} {row.obj!r} is valid from "
                    f"{row.valid_from.isoformat()}, after {end.isoformat()}; a fact cannot end before it began"
                )
        if rows:
            session.execute(
                update(FactRow)
                .where(FactRow.id.in_([row.id for row in rows]))
                .values(valid_to=end, superseded_by=successor),
                execution_options={"synchronize_session": False},
            )

    def retract(
        self,
        subject: str,
        predicate: str,
        obj: str | None = None,
        *,
        tenant: str = "default",
        valid_to: datetime | None = None,
    ) -> list[Fact]:
        """Close the open facts of ``subject`` and ``predicate`` (only the one with ``obj`` when given).

        Retracted facts stay queryable with ``as_of`` and ``history``.

        Returns:
            The facts closed, as they are now (empty when none was open).

        Raises:
            UsageError: a naive ``valid_to``, or one before the start of a fact it would close.
        """
        end = _aware(valid_to, "valid_to")
        conditions = [FactRow.tenant == tenant, FactRow.subject == subject, FactRow.predicate == predicate]
        if obj is not None:
            conditions.append(FactRow.obj == obj)
        with transaction(self._writer, f"retract the fact {subject!r} {predicate!r}") as session:
            self._lock(session, tenant, subject, predicate)
            rows = list(session.scalars(select(FactRow).where(*conditions, FactRow.valid_to.is_(None))))
            self._close(session, rows, end or utcnow(), None)
            ids = [row.id for row in rows]
            session.expire_all()
            closed = session.scalars(select(FactRow).where(FactRow.id.in_(ids)).order_by(FactRow.valid_from))
            return [_fact(row) for row in closed]

    def query(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        obj: str | None = None,
        *,
        tenant: str = "default",
        as_of: datetime | None = None,
        history: bool = False,
    ) -> list[Fact]:
        """The tenant's facts matching the pattern (``None`` matches anything), oldest first.

        Args:
            subject: only facts about this subject.
            predicate: only facts with this predicate.
            obj: only facts with this object.
            tenant: whose knowledge base.
            as_of: the facts valid at this moment instead of now.
            history: every version, open or closed, ignoring ``as_of``.

        Raises:
            UsageError: a naive ``as_of``, or ``as_of`` together with ``history``.
        """
        moment = _aware(as_of, "as_of")
        if history and moment is not None:
            raise UsageError("pass either as_of (the facts valid then) or history (every version), not both")
        statement = select(FactRow).where(FactRow.tenant == tenant)
        for column, value in ((FactRow.subject, subject), (FactRow.predicate, predicate), (FactRow.obj, obj)):
            if value is not None:
                statement = statement.where(column == value)
        if not history:
            statement = statement.where(_valid_at(moment or utcnow()))
        statement = statement.order_by(FactRow.valid_from, FactRow.created_at, FactRow.id)
        with transaction(self._engine, "query facts") as session:
            return [_fact(row) for row in session.scalars(statement)]


class KnowledgeBase:
    """Durable facts shared by every agent, stored next to the episodic memory.

    Args:
        memory_or_engine: an open episodic memory (its engine and tables are shared), or an
            engine whose database is already migrated.
        functional: predicates that hold one object at a time; see :class:`SyncKnowledgeBase`.
    """

    def __init__(
        self, memory_or_engine: EpisodicMemory | SyncEpisodicMemory | Engine, *, functional: Iterable[str] = ()
    ) -> None:
        self.sync = SyncKnowledgeBase(memory_or_engine, functional=functional)

    async def assert_fact(
        self,
        subject: str,
        predicate: str,
        obj: str,
        *,
        source: str = "",
        confidence: float = 1.0,
        tenant: str = "default",
        supersede: bool | None = None,
        valid_from: datetime | None = None,
    ) -> Fact:
        """Store a fact; see :meth:`SyncKnowledgeBase.assert_fact`."""

        def work() -> Fact:
            return self.sync.assert_fact(
                subject,
                predicate,
                obj,
                source=source,
                confidence=confidence,
                tenant=tenant,
                supersede=supersede,
                valid_from=valid_from,
            )

        return await to_thread.run_sync(work)

    async def retract(
        self,
        subject: str,
        predicate: str,
        obj: str | None = None,
        *,
        tenant: str = "default",
        valid_to: datetime | None = None,
    ) -> list[Fact]:
        """Close open facts without a successor; see :meth:`SyncKnowledgeBase.retract`."""
        return await to_thread.run_sync(
            lambda: self.sync.retract(subject, predicate, obj, tenant=tenant, valid_to=valid_to)
        )

    async def query(
        self,
        subject: str | None = None,
        predicate: str | None = None,
        obj: str | None = None,
        *,
        tenant: str = "default",
        as_of: datetime | None = None,
        history: bool = False,
    ) -> list[Fact]:
        """The tenant's facts matching the pattern; see :meth:`SyncKnowledgeBase.query`."""
        return await to_thread.run_sync(
            lambda: self.sync.query(subject, predicate, obj, tenant=tenant, as_of=as_of, history=history)
        )
