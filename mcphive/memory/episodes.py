"""Episodes with scoped hybrid recall: the async :class:`EpisodeStore` over :class:`SyncEpisodeStore`.

An episode is anything worth remembering (a conversation turn, a task step, an outcome), owned
by a tenant and optionally tied to a workspace, agent and thread. ``recall`` searches one scope
with BM25 and MiniLM embeddings, fuses both rankings (reciprocal-rank fusion), spreads a share of
each match to its neighbours in the same thread, and adds recency and importance with the
weights of :class:`RecallWeights`. Text is scanned with detect-secrets and credentials are
redacted before anything is stored or embedded.

Example::

    store = EpisodeStore(SyncEpisodeStore(memory.engine))
    await store.record(Episode(tenant="acme", thread="t1", text="deploy failed: disk full", outcome="failed"))
    hits = await store.recall("why did the deploy fail?", scope=RecallScope(tenant="acme"), k=5)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

from anyio import to_thread
from sqlalchemy import Engine

from mcphive.errors import UsageError
from mcphive.types import utcnow

from ._recall_models import Episode, RecallHit, RecallScope, RecallWeights

if TYPE_CHECKING:
    from ._consolidate import ConsolidationReport, Summarizer
    from ._recall_store import SyncEpisodeStore, TextEmbedder

_NOTES_PER_WRITE = 32
"""Notes embedded and written together during consolidation."""

__all__ = ["Episode", "EpisodeStore", "RecallHit", "RecallScope", "RecallWeights", "SyncEpisodeStore", "TextEmbedder"]


def __getattr__(name: str) -> Any:
    # The blocking store pulls in numpy, BM25 and detect-secrets; load them on first use only.
    if name in ("SyncEpisodeStore", "TextEmbedder"):
        from . import _recall_store

        return getattr(_recall_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class EpisodeStore:
    """The async episode store: each method runs the wrapped :class:`SyncEpisodeStore` in a worker thread.

    Args:
        store: the blocking store (``.sync``); build it on the memory's engine to share its database.
    """

    def __init__(self, store: SyncEpisodeStore) -> None:
        self.sync = store

    @classmethod
    def open(cls, url: str, *, embedder: TextEmbedder | None = None, weights: RecallWeights | None = None) -> Self:
        """Open (creating and migrating) the database at ``url``; blocking, call it at start-up.

        Raises:
            StoreError: the URL is invalid, the database cannot be reached, or migration failed.
        """
        from ._recall_store import SyncEpisodeStore

        return cls(SyncEpisodeStore.open(url, embedder=embedder, weights=weights))

    @property
    def engine(self) -> Engine:
        """The engine the episodes live on."""
        return self.sync.engine

    def close(self) -> None:
        """See :meth:`SyncEpisodeStore.close`."""
        self.sync.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def record(self, episode: Episode) -> Episode:
        """Store one episode (redacted, embedded); returns it as stored."""
        return await to_thread.run_sync(self.sync.record, episode)

    async def record_many(self, episodes: Sequence[Episode]) -> list[Episode]:
        """Store several episodes with one embedding batch and one transaction; returns them as stored."""
        return await to_thread.run_sync(self.sync.record_many, episodes)

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
        weights: RecallWeights | None = None,
    ) -> list[RecallHit]:
        """The ``k`` best episodes of ``scope`` for ``query``; see :meth:`SyncEpisodeStore.recall`."""

        def work() -> list[RecallHit]:
            return self.sync.recall(
                query, scope=scope, k=k, since=since, until=until, agent=agent, outcome=outcome, weights=weights
            )

        return await to_thread.run_sync(work)

    async def consolidate(
        self,
        scope: RecallScope,
        *,
        older_than: timedelta,
        batch_size: int = 20,
        summarizer: Summarizer | None = None,
        max_notes: int | None = None,
        now: datetime | None = None,
    ) -> ConsolidationReport:
        """Summarise ``scope``'s episodes older than ``older_than`` into notes; the episodes stay recallable.

        Each thread's old episodes not yet consolidated are taken in time order, ``batch_size`` at
        a time; each batch becomes one episode of kind ``"note"`` (``metadata["sources"]`` lists the
        batch's ids) and the batch's episodes point at it, so a later run skips them.

        Args:
            scope: whose episodes.
            older_than: the retention age; younger episodes are left alone.
            batch_size: episodes per note.
            summarizer: what writes the notes: :class:`ModelSummarizer` over a ChatModel, or by
                default :class:`ExtractiveSummarizer` (no model).
            max_notes: stop after this many notes (``None``: consolidate everything due).
            now: the time the retention age counts back from (default: now).

        Raises:
            UsageError: ``batch_size`` below 2 or a non-positive ``older_than``.
            StoreError: the database failed.
        """
        from ._consolidate import ConsolidationReport, ExtractiveSummarizer, note_for

        if older_than <= timedelta(0):
            raise UsageError(f"older_than must be a positive age, got {older_than}")
        before = (now or utcnow()) - older_than
        batches = await to_thread.run_sync(
            lambda: self.sync.pending_consolidation(scope, before=before, batch_size=batch_size)
        )
        if max_notes is not None:
            batches = batches[:max_notes]
        writer = summarizer or ExtractiveSummarizer()
        notes: list[Episode] = []
        methods: dict[str, int] = {}
        consolidated = skipped = 0
        for start in range(0, len(batches), _NOTES_PER_WRITE):
            chunk = batches[start : start + _NOTES_PER_WRITE]
            loaded = await to_thread.run_sync(self.sync.episodes_by_id, [i for batch in chunk for i in batch])
            by_id = {episode.id: episode for episode in loaded}
            drafts = []
            for ids in chunk:
                batch = [by_id[i] for i in ids if i in by_id]
                text, method = await writer.summarize(batch)
                if text.strip():
                    drafts.append(note_for(batch, text, method))
                else:
                    skipped += len(batch)
            written = await to_thread.run_sync(self.sync.record_notes, drafts)
            for draft, note in zip(drafts, written, strict=True):
                if note is None:
                    skipped += len(draft.metadata["sources"])
                    continue
                notes.append(note)
                consolidated += len(note.metadata["sources"])
                methods[note.metadata["method"]] = methods.get(note.metadata["method"], 0) + 1
        return ConsolidationReport(notes=notes, consolidated=consolidated, methods=methods, skipped=skipped)

    async def count(self, scope: RecallScope) -> int:
        """Number of episodes in ``scope``."""
        return await to_thread.run_sync(self.sync.count, scope)
