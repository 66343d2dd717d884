"""The async episodic memory: :class:`SyncEpisodicMemory`'s operations, run off the event loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from anyio import to_thread
from sqlalchemy import Engine

from mcphive.types import Principal, Route, Task, TaskResult, TaskStatus

from ._engine import run_blocking
from .sync import SyncEpisodicMemory, TaskSummary

if TYPE_CHECKING:
    from mcphive.inference.base import ChatModel

    from ._consolidate import ConsolidationReport, Summarizer
    from .episodes import EpisodeStore, RecallHit, RecallScope
    from .knowledge import KnowledgeBase

__all__ = ["EpisodicMemory"]

T = TypeVar("T")


class EpisodicMemory:
    """What every task asked, how it was routed, each step and tool call, and how it ended.

    Every method runs one short transaction of the wrapped :class:`SyncEpisodicMemory`
    (available as :attr:`sync`) in a worker thread, or inline when SQLite can take it at once
    (see :func:`~mcphive.memory._engine.run_blocking`). A cancelled caller does not abandon the
    thread, so a transaction already under way still commits or rolls back as a whole.

    Args:
        store: the blocking store to wrap; usually built by :meth:`open`.
        functional_predicates: knowledge-base predicates that hold one object at a time (see
            :attr:`knowledge`).
        retention: the default age after which :meth:`consolidate` summarises episodes.
        consolidation_batch: the default number of episodes per consolidated note.
    """

    def __init__(
        self,
        store: SyncEpisodicMemory,
        *,
        functional_predicates: Iterable[str] = (),
        retention: timedelta = timedelta(days=30),
        consolidation_batch: int = 20,
    ) -> None:
        self.sync = store
        self.functional_predicates = frozenset(functional_predicates)
        self.retention = retention
        self.consolidation_batch = consolidation_batch
        self._episodes: EpisodeStore | None = None
        self._knowledge: KnowledgeBase | None = None

    @property
    def episodes(self) -> EpisodeStore:
        """Scoped episodes with hybrid recall, on the same database (built on first use)."""
        if self._episodes is None:
            from .episodes import EpisodeStore, SyncEpisodeStore

            self._episodes = EpisodeStore(SyncEpisodeStore(self.engine))
        return self._episodes

    @property
    def knowledge(self) -> KnowledgeBase:
        """The knowledge base on the same database, with this memory's functional predicates."""
        if self._knowledge is None:
            from .knowledge import KnowledgeBase

            self._knowledge = KnowledgeBase(self, functional=self.functional_predicates)
        return self._knowledge

    @classmethod
    def open(
        cls,
        url: str,
        *,
        functional_predicates: Iterable[str] = (),
        retention: timedelta = timedelta(days=30),
        consolidation_batch: int = 20,
    ) -> Self:
        """Open the database at ``url``, creating its folder (SQLite) and migrating it to the newest schema.

        Blocking: call it while building the application, not from inside a running task. The
        keyword arguments are those of the constructor.

        Raises:
            StoreError: the URL is invalid, the file or server cannot be reached, or migration failed.
        """
        return cls(
            SyncEpisodicMemory.open(url),
            functional_predicates=functional_predicates,
            retention=retention,
            consolidation_batch=consolidation_batch,
        )

    async def consolidate(
        self,
        scope: RecallScope,
        *,
        older_than: timedelta | None = None,
        batch_size: int | None = None,
        model: ChatModel | None = None,
        summarizer: Summarizer | None = None,
        max_notes: int | None = None,
    ) -> ConsolidationReport:
        """Summarise ``scope``'s old episodes into recallable notes; the episodes themselves stay.

        Notes are written by ``summarizer``, else by ``model`` (e.g. ``hive.model``; the extractive
        summary stands in when it is unavailable), else extractively without a model. See
        :meth:`mcphive.memory.episodes.EpisodeStore.consolidate`.

        Args:
            scope: whose episodes.
            older_than: the retention age (default :attr:`retention`).
            batch_size: episodes per note (default :attr:`consolidation_batch`).
            model: a ChatModel to write the notes.
            summarizer: what writes the notes, instead of ``model``.
            max_notes: stop after this many notes.
        """
        if summarizer is None and model is not None:
            from ._consolidate import ModelSummarizer

            summarizer = ModelSummarizer(model)
        return await self.episodes.consolidate(
            scope,
            older_than=older_than or self.retention,
            batch_size=batch_size or self.consolidation_batch,
            summarizer=summarizer,
            max_notes=max_notes,
        )

    async def _run(self, operation: Callable[[], T]) -> T:
        """A short operation of the store, inline when SQLite's lock is free (see :func:`run_blocking`)."""
        return await run_blocking(self.sync.engine, operation)

    @property
    def engine(self) -> Engine:
        """The engine shared with :class:`~mcphive.memory.KnowledgeBase`."""
        return self.sync.engine

    def close(self) -> None:
        """Close every pooled connection; the object must not be used afterwards."""
        if self._episodes is not None:
            self._episodes.close()
        self.sync.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def record_task(self, task: Task, status: TaskStatus = TaskStatus.QUEUED) -> None:
        """Insert ``task`` with ``status``; recording the same id again changes nothing."""
        await self._run(lambda: self.sync.record_task(task, status))

    async def record_route(self, task_id: str, route: Route) -> None:
        """Add a routing decision to a recorded task. Raises UsageError for an unknown task."""
        await self._run(lambda: self.sync.record_route(task_id, route))

    async def set_status(self, task_id: str, status: TaskStatus, *, error: str | None = None) -> None:
        """Move a recorded task to ``status``, stamping start/finish times. Raises UsageError for an unknown task."""
        await self._run(lambda: self.sync.set_status(task_id, status, error=error))

    async def record_result(self, result: TaskResult) -> None:
        """Store ``result`` and its subtasks in one transaction; see :meth:`SyncEpisodicMemory.record_result`."""
        await self._run(lambda: self.sync.record_result(result))

    async def get(self, task_id: str) -> TaskResult | None:
        """Rebuild the full TaskResult of ``task_id`` (steps, tool calls, subtasks), or ``None``."""
        return await self._run(lambda: self.sync.get(task_id))

    async def recent(self, limit: int = 20, *, principal: Principal | None = None) -> list[TaskSummary]:
        """The newest top-level tasks first, only ``principal``'s when given."""
        return await to_thread.run_sync(lambda: self.sync.recent(limit, principal=principal))

    @overload
    async def recall(self, query: str, limit: int = 5, *, principal: Principal | None = None) -> list[TaskSummary]: ...

    @overload
    async def recall(
        self,
        query: str,
        *,
        scope: RecallScope,
        k: int = 10,
        since: datetime | None = None,
        until: datetime | None = None,
        agent: str | None = None,
        outcome: str | None = None,
    ) -> list[RecallHit]: ...

    async def recall(
        self, query: str, limit: int = 5, *, principal: Principal | None = None, scope: RecallScope | None = None,
        k: int = 10, **filters: Any,
    ) -> list[TaskSummary] | list[RecallHit]:  # fmt: skip
        """Recall from memory.

        With ``scope``: hybrid recall over episodes (BM25 + neighbour windows + MiniLM, fused, then recency and
        importance; see :mod:`mcphive.memory.episodes`), the ``k`` best hits. Without: past top-level tasks whose
        text or answer contain the most words of ``query``, newest first among equals.
        """
        if scope is not None:
            return await self.episodes.recall(query, scope=scope, k=k, **filters)
        return await to_thread.run_sync(lambda: self.sync.recall(query, limit, principal=principal))

    async def resolve_id(self, prefix: str) -> str:
        """Return the one task id starting with ``prefix``. Raises UsageError when none or several do."""
        return await self._run(lambda: self.sync.resolve_id(prefix))
