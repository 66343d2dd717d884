"""The blocking episode store: record episodes (redacted, embedded) and recall them by scope.

:class:`SyncEpisodeStore` is the implementation; :class:`mcphive.memory.episodes.EpisodeStore`
runs its methods in a worker thread.

Recording is built for bulk: one detect-secrets pass over a whole batch (only the episodes it
flags are redacted one by one), one embedding batch, and one transaction whose rows go in with a
single executemany (SQLite) or ``COPY ... FROM STDIN`` (PostgreSQL through psycopg 3).

Recall loads the scope's episodes once into a :class:`~mcphive.memory._recall_rank.ScopeIndex`
(vectors, times, BM25 index) and keeps it while the scope's row count and newest sequence number
are unchanged, so writes from this or any other process invalidate it at the cost of one indexed
``count``/``max`` query per recall.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, Self, cast

import numpy as np
from sqlalchemy import ColumnElement, Connection, CursorResult, Engine, Select, Table, func, insert, select, update
from sqlalchemy.orm import Session

from mcphive.errors import UsageError
from mcphive.redaction import find_secrets, redact_secrets

from ._engine import create_store_engine, migrate, transaction, writer
from ._episode_tables import EpisodeRow
from ._recall_models import Episode, RecallHit, RecallScope, RecallWeights
from ._recall_rank import ScopeIndex

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["SyncEpisodeStore", "TextEmbedder"]

_CACHED_SCOPES = 64
_ID_CHUNK = 500
_COPY_MIN = 32
"""Rows from which a PostgreSQL batch goes in by ``COPY`` rather than an executemany ``INSERT``."""
_TABLE = cast("Table", EpisodeRow.__table__)
_INSERTED = ("id", "tenant", "workspace", "agent", "thread", "kind", "text", "created_at", "importance", "outcome",
             "metadata", "embedding", "consolidated_in")  # fmt: skip
"""The columns a recorded row sets (``seq`` comes from the database), by their database names."""
_KEYS = {column.name: column.key for column in _TABLE.columns}
_COLUMNS = (
    EpisodeRow.seq,
    EpisodeRow.id,
    EpisodeRow.tenant,
    EpisodeRow.workspace,
    EpisodeRow.agent,
    EpisodeRow.thread,
    EpisodeRow.kind,
    EpisodeRow.text,
    EpisodeRow.created_at,
    EpisodeRow.importance,
    EpisodeRow.outcome,
    EpisodeRow.meta,
    EpisodeRow.embedding,
)


class TextEmbedder(Protocol):
    """Anything that turns texts into unit float32 rows, like :class:`mcphive.embeddings.Embedder`."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One L2-normalised row per text, in order."""
        ...


@dataclass(frozen=True)
class _Loaded:
    """A scope's episodes and their arrays, valid while the scope has ``count`` rows up to ``last_seq``."""

    count: int
    last_seq: int
    episodes: list[Episode]
    index: ScopeIndex
    agents: npt.NDArray[Any]
    outcomes: npt.NDArray[Any]


class _Overtaken(Exception):
    """Some sources of a note were consolidated by someone else first; its transaction rolls back."""


def _scope_filter(scope: RecallScope) -> list[ColumnElement[bool]]:
    conditions = [EpisodeRow.tenant == scope.tenant]
    for name in ("workspace", "agent", "thread"):
        value = getattr(scope, name)
        if value is not None:
            conditions.append(getattr(EpisodeRow, name) == value)
    return conditions


def _version_query(scope: RecallScope) -> Select[int, int]:
    """The number of ``scope``'s episodes and its newest ``seq``: what a cached scope is checked against."""
    return select(func.count(), func.coalesce(func.max(EpisodeRow.seq), 0)).where(*_scope_filter(scope))


def _load_query(scope: RecallScope) -> Select[Any]:
    """``scope``'s episodes in thread order, as :class:`ScopeIndex` wants them."""
    return (
        select(*_COLUMNS)
        .where(*_scope_filter(scope))
        .order_by(EpisodeRow.thread, EpisodeRow.created_at, EpisodeRow.seq)
    )


def _redact_value(value: Any, kinds: set[str]) -> Any:
    """``value`` (any JSON value) with credentials redacted from every string in it."""
    if isinstance(value, str):
        clean, found = redact_secrets(value)
        kinds.update(found)
        return clean
    if isinstance(value, dict):
        return {key: _redact_value(item, kinds) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item, kinds) for item in value]
    return value


def _redacted(episode: Episode) -> Episode:
    """``episode`` with credentials removed from its text and metadata, and their types noted in its metadata."""
    kinds: set[str] = set()
    text = _redact_value(episode.text, kinds)
    metadata = _redact_value(episode.metadata, kinds)
    if not kinds:
        return episode
    return episode.model_copy(update={"text": text, "metadata": {**metadata, "redacted": sorted(kinds)}})


def _strings(value: Any) -> list[str]:
    """Every string in ``value`` (any JSON value), depth first."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []


def _needs_own_scan(text: str) -> bool:
    """Whether :func:`redact_secrets` scans ``text`` other than line by line (a JSON document, a private key)."""
    return text.lstrip()[:1] in ("{", "[") or "PRIVATE KEY" in text


def _redacted_batch(episodes: Sequence[Episode]) -> list[Episode]:
    """:func:`_redacted` over a batch, with one detect-secrets pass over all its strings.

    Entering detect-secrets costs far more than its pre-filter spends on a line, so the batch is
    scanned once and only the episodes holding a finding (or a string that redaction reads
    differently from its lines: a JSON document, a private key block) are redacted one by one,
    exactly as :func:`_redacted` does for a single episode; the others are stored as given.
    """
    texts: list[str] = []
    owners: list[int] = []
    for index, episode in enumerate(episodes):
        for text in (episode.text, *_strings(episode.metadata)):
            texts.append(text)
            owners.append(index)
    flagged = {owners[finding.text] for finding in find_secrets(texts)}
    flagged.update(owner for owner, text in zip(owners, texts, strict=True) if _needs_own_scan(text))
    return [_redacted(episode) if index in flagged else episode for index, episode in enumerate(episodes)]


def _episode(row: Any) -> Episode:
    # Stored rows were validated when recorded; skipping validation on the way back matters when a
    # scope of thousands of episodes is loaded.
    return Episode.model_construct(
        id=row.id,
        tenant=row.tenant,
        workspace=row.workspace,
        agent=row.agent,
        thread=row.thread,
        kind=row.kind,
        text=row.text,
        created_at=row.created_at,
        importance=row.importance,
        outcome=row.outcome,
        metadata=row.meta or {},
    )


class SyncEpisodeStore:
    """Episodes with scoped hybrid recall, on the memory database.

    Args:
        engine: an engine whose database is migrated to the newest schema (e.g.
            ``EpisodicMemory.engine``, so episodes share the memory's database).
        embedder: what embeds texts; defaults to the process-wide MiniLM embedder.
        weights: default scoring weights of :meth:`recall`.
    """

    def __init__(
        self, engine: Engine, *, embedder: TextEmbedder | None = None, weights: RecallWeights | None = None
    ) -> None:
        self.engine = engine
        self.weights = weights or RecallWeights()
        self._embedder = embedder
        self._owns_engine = False
        self._lock = threading.Lock()
        self._scopes: OrderedDict[RecallScope, _Loaded] = OrderedDict()

    @classmethod
    def open(cls, url: str, *, embedder: TextEmbedder | None = None, weights: RecallWeights | None = None) -> Self:
        """Open (creating and migrating) the database at ``url``; blocking.

        Raises:
            StoreError: the URL is invalid, the database cannot be reached, or migration failed.
        """
        engine = create_store_engine(url)
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        store = cls(engine, embedder=embedder, weights=weights)
        store._owns_engine = True
        return store

    def close(self) -> None:
        """Forget cached scopes and, when :meth:`open` created the engine, close its connections."""
        with self._lock:
            self._scopes.clear()
        if self._owns_engine:
            self.engine.dispose()

    def _embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self._embedder is None:
            from mcphive.embeddings import get_embedder

            self._embedder = get_embedder()
        return np.asarray(self._embedder.embed(list(texts)), dtype=np.float32)

    def record(self, episode: Episode) -> Episode:
        """Store one episode; see :meth:`record_many`."""
        return self.record_many([episode])[0]

    def record_many(self, episodes: Sequence[Episode]) -> list[Episode]:
        """Redact secrets from, embed (in one batch) and store ``episodes`` in one transaction.

        Returns:
            The episodes as stored: credentials in the text replaced by ``[REDACTED:<type>]`` and the
            redacted types listed under ``metadata["redacted"]``.

        Raises:
            UsageError: an episode id is recorded twice.
            StoreError: the database failed.
        """
        if not episodes:
            return []
        stored, rows = self._rows(episodes)
        with transaction(writer(self.engine), "record episodes") as session:
            self._check_new_ids(session, [episode.id for episode in stored])
            _insert(session.connection(), rows)
        self._forget({episode.tenant for episode in stored})
        return stored

    def _rows(self, episodes: Sequence[Episode]) -> tuple[list[Episode], list[dict[str, Any]]]:
        """``episodes`` redacted, and their table rows (by column name) with their embeddings."""
        if len({episode.id for episode in episodes}) != len(episodes):
            raise UsageError("the same episode id appears twice in one batch; give each episode its own id")
        stored = _redacted_batch(episodes)
        vectors = np.ascontiguousarray(self._embed([episode.text for episode in stored]), dtype="<f4")
        rows = [
            {
                "id": episode.id,
                "tenant": episode.tenant,
                "workspace": episode.workspace,
                "agent": episode.agent,
                "thread": episode.thread,
                "kind": episode.kind,
                "text": episode.text,
                "created_at": episode.created_at,
                "importance": episode.importance,
                "outcome": episode.outcome,
                "metadata": episode.metadata,
                "embedding": vector.tobytes(),
                "consolidated_in": None,
            }
            for episode, vector in zip(stored, vectors, strict=True)
        ]
        return stored, rows

    def _forget(self, tenants: set[str]) -> None:
        # The count check in recall would notice too; dropping the tenants' scopes frees their memory now.
        with self._lock:
            for scope in [scope for scope in self._scopes if scope.tenant in tenants]:
                del self._scopes[scope]

    def pending_consolidation(self, scope: RecallScope, *, before: datetime, batch_size: int) -> list[list[str]]:
        """The ids of ``scope``'s episodes older than ``before`` and not consolidated yet, in batches.

        Each batch is up to ``batch_size`` episodes of one thread in time order; a thread's last
        batch of one episode is left out (a note of one episode summarises nothing).
        """
        if batch_size < 2:
            raise UsageError(f"a consolidation batch needs at least 2 episodes, got {batch_size}")
        query = (
            select(EpisodeRow.id, EpisodeRow.thread)
            .where(*_scope_filter(scope), EpisodeRow.created_at < before, EpisodeRow.consolidated_in.is_(None))
            .order_by(EpisodeRow.thread, EpisodeRow.created_at, EpisodeRow.seq)
        )
        with transaction(self.engine, "find episodes to consolidate") as session:
            rows = session.execute(query).all()
        batches: list[list[str]] = []
        for _, group in itertools.groupby(rows, key=lambda row: row.thread):
            ids = [row.id for row in group]
            batches.extend(ids[start : start + batch_size] for start in range(0, len(ids), batch_size))
        return [batch for batch in batches if len(batch) > 1]

    def episodes_by_id(self, ids: Sequence[str]) -> list[Episode]:
        """The stored episodes with ``ids``, in time order (unknown ids are left out)."""
        found: list[Episode] = []
        with transaction(self.engine, "load episodes") as session:
            for start in range(0, len(ids), _ID_CHUNK):
                query = select(*_COLUMNS).where(EpisodeRow.id.in_(ids[start : start + _ID_CHUNK]))
                found.extend(_episode(row) for row in session.execute(query))
        return sorted(found, key=lambda e: e.created_at)

    def record_notes(self, notes: Sequence[Episode]) -> list[Episode | None]:
        """Store consolidated notes and mark their sources (``metadata["sources"]``) as consolidated.

        All in one transaction per note: a note whose sources another process consolidated
        meanwhile is not stored (``None`` in its place), and its sources keep their first note.

        Raises:
            UsageError: a note without sources, or with an id already recorded.
            StoreError: the database failed.
        """
        if any(not note.metadata.get("sources") for note in notes):
            raise UsageError("a consolidated note needs metadata['sources'], the ids of the episodes it summarises")
        if not notes:
            return []
        stored, rows = self._rows(notes)
        with transaction(self.engine, "check episode ids") as session:
            self._check_new_ids(session, [note.id for note in stored])
        written: list[Episode | None] = []
        for note, row in zip(stored, rows, strict=True):
            sources = list(note.metadata["sources"])
            try:
                with transaction(writer(self.engine), "record a consolidated note") as session:
                    _insert(session.connection(), [{**row, "consolidated_in": note.id}])
                    marked = session.execute(
                        update(EpisodeRow)
                        .where(EpisodeRow.id.in_(sources), EpisodeRow.consolidated_in.is_(None))
                        .values(consolidated_in=note.id),
                        execution_options={"synchronize_session": False},
                    )
                    if cast("CursorResult[Any]", marked).rowcount != len(sources):
                        raise _Overtaken
            except _Overtaken:
                written.append(None)
            else:
                written.append(note)
        self._forget({note.tenant for note in stored})
        return written

    @staticmethod
    def _check_new_ids(session: Session, ids: list[str]) -> None:
        """Raise :class:`UsageError` when one of ``ids`` is recorded already."""
        # Chunked: SQLite limits the number of bound parameters in one statement.
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            taken = session.scalars(select(EpisodeRow.id).where(EpisodeRow.id.in_(chunk)).limit(1)).first()
            if taken is not None:
                raise UsageError(f"episode {taken!r} is already recorded; episodes are immutable, record a new one")

    def recall(
        self,
        query: str,
        *,
        scope: RecallScope,
        k: int = 10,
        since: datetime | None = None,
        until: datetime | None = None,
        agent: str | None = None,
        outcome: str | None = None,
        weights: RecallWeights | None = None,
    ) -> list[RecallHit]:
        """The ``k`` episodes of ``scope`` that best match ``query``, best first.

        Args:
            query: what to remember, in words.
            scope: whose episodes to search; only ``scope.tenant``'s are ever returned.
            k: at most this many hits.
            since: only episodes created at or after this time.
            until: only episodes created before this time.
            agent: only episodes of this agent.
            outcome: only episodes with this outcome.
            weights: scoring weights for this call instead of the store's.

        Raises:
            UsageError: ``k`` is not positive or the query is empty.
            StoreError: the database failed.
        """
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        if not query.strip():
            raise UsageError("the recall query is empty; say what to remember")
        loaded = self._scope(scope)
        if not loaded.episodes:
            return []
        mask = np.ones(len(loaded.episodes), dtype=bool)
        if since is not None:
            mask &= loaded.index.created >= since.timestamp()
        if until is not None:
            mask &= loaded.index.created < until.timestamp()
        if agent is not None:
            mask &= loaded.agents == agent
        if outcome is not None:
            mask &= loaded.outcomes == outcome
        query_vector = self._embed([query])[0]
        now = datetime.now().timestamp()
        ranked = loaded.index.rank(query, query_vector, mask, weights or self.weights, k=k, now=now)
        return [
            RecallHit(
                episode=loaded.episodes[hit.row],
                score=hit.score,
                relevance=hit.relevance,
                recency=hit.recency,
                importance=hit.importance,
                lexical_rank=hit.lexical_rank,
                dense_rank=hit.dense_rank,
            )
            for hit in ranked
        ]

    def count(self, scope: RecallScope) -> int:
        """Number of episodes in ``scope``."""
        return self._version(scope)[0]

    def _version(self, scope: RecallScope) -> tuple[int, int]:
        with transaction(self.engine, "count episodes") as session:
            count, last = session.execute(_version_query(scope)).one()
        return int(count), int(last)

    def _scope(self, scope: RecallScope) -> _Loaded:
        count, last = self._version(scope)
        with self._lock:
            cached = self._scopes.get(scope)
            if cached is not None and (cached.count, cached.last_seq) == (count, last):
                self._scopes.move_to_end(scope)
                return cached
        loaded = self._load(scope)
        with self._lock:
            self._scopes[scope] = loaded
            while len(self._scopes) > _CACHED_SCOPES:
                self._scopes.popitem(last=False)
        return loaded

    def _load(self, scope: RecallScope) -> _Loaded:
        with transaction(self.engine, "load episodes") as session:
            rows = session.execute(_load_query(scope)).all()
        episodes = [_episode(row) for row in rows]
        dim = len(rows[0].embedding) // 4 if rows else 0
        vectors = np.frombuffer(b"".join(row.embedding for row in rows), dtype="<f4").reshape(len(rows), dim)
        index = ScopeIndex(
            texts=[e.text for e in episodes],
            vectors=vectors.astype(np.float32),
            created=np.array([e.created_at.timestamp() for e in episodes], dtype=np.float64),
            importance=np.array([e.importance for e in episodes], dtype=np.float64),
            threads=[e.thread for e in episodes],
            agents=[e.agent for e in episodes],
        )
        return _Loaded(
            count=len(rows),
            last_seq=max((row.seq for row in rows), default=0),
            episodes=episodes,
            index=index,
            agents=np.array([e.agent for e in episodes], dtype=object),
            outcomes=np.array([e.outcome for e in episodes], dtype=object),
        )


def _insert(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert episode ``rows`` (by column name) in the connection's transaction, in order.

    PostgreSQL through psycopg 3 takes a batch by ``COPY``, several times faster than even a
    pipelined executemany; other backends (and small batches) get one Core executemany.
    """
    if len(rows) >= _COPY_MIN and connection.dialect.driver == "psycopg":
        _copy(connection.connection.driver_connection, rows)
        return
    connection.execute(insert(_TABLE), [{_KEYS[name]: row[name] for name in _INSERTED} for row in rows])


def _copy(raw: Any, rows: list[dict[str, Any]]) -> None:
    """``COPY`` ``rows`` into ``episodes`` on a psycopg 3 connection, as SQLAlchemy would bind them.

    The JSON column gets the text SQLAlchemy's default serialiser writes (``json.dumps``), so a
    copied row is identical to an inserted one.
    """
    names = ", ".join(f'"{name}"' for name in _INSERTED)
    with raw.cursor() as cursor, cursor.copy(f"COPY episodes ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[name]) if name == "metadata" else row[name] for name in _INSERTED])
