"""The document store: chunks in a chromadb ``PersistentClient``, searched by vectors and BM25, fused with RRF.

Embeddings always come from :mod:`mcphive.embeddings` and are handed to chroma ready-made
(``embeddings=`` / ``query_embeddings=``), so chroma never loads its default embedding
function, which would try to download a model.

The store is synchronous and thread-safe (one lock around chroma and the BM25 index). Async
callers run its methods in a worker thread (``anyio.to_thread.run_sync``), as the RAG MCP
server does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from mcphive.errors import StoreError, UsageError
from mcphive.lexical import RRF_K, LexicalIndex, reciprocal_rank_fusion
from mcphive.rag.chunking import Chunk

if TYPE_CHECKING:
    from mcphive.embeddings import Embedder

__all__ = ["DocumentStore", "Hit"]

logger = logging.getLogger(__name__)

_CANDIDATES = 4
"""Each ranking contributes ``k * _CANDIDATES`` candidates (at least 20) to the fusion."""
_WRITE_BATCH = 1000
_READ_PAGE = 5000
_EF_SEARCH = 200
"""HNSW candidate list at query time; chroma's default of 10 finds only ~6 of the true top 10 at 100k chunks."""
"""Chunks read per ``get``: chroma binds one SQL variable per id, and SQLite allows 32,766 in a statement."""


class Hit(BaseModel):
    """One search result.

    Attributes:
        text: the chunk's text.
        source: the document it came from.
        start_line: first line of the chunk in the source, 1-based.
        end_line: last line, inclusive.
        score: fused RRF score (higher is better).
        vector_rank: 1-based rank in the vector search, ``None`` when not among its candidates.
        bm25_rank: 1-based rank in the BM25 search, ``None`` when not among its candidates.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    source: str
    start_line: int
    end_line: int
    score: float
    vector_rank: int | None = None
    bm25_rank: int | None = None


class _Snapshot:
    """Every stored chunk (ids, texts, metadata) and a BM25 index over them, as of one count."""

    def __init__(self, ids: list[str], documents: list[str], metadatas: list[dict[str, Any]]) -> None:
        self.ids = ids
        self.documents = documents
        self.metadatas = metadatas
        self.position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.lexical = LexicalIndex(documents)


class DocumentStore:
    """Chunks persisted by chromadb, searched with hybrid (vector + BM25) retrieval.

    Args:
        path: folder of the chroma database (created if missing).
        embedder: the embedder to use; defaults to the process-wide :func:`~mcphive.embeddings.get_embedder`.
        collection: chroma collection name.

    Raises:
        StoreError: chroma cannot open the database at ``path``.
    """

    def __init__(self, path: Path, embedder: Embedder | None = None, collection: str = "docs") -> None:
        if embedder is None:
            from mcphive.embeddings import get_embedder

            embedder = get_embedder()
        self.path = Path(path)
        self._embedder = embedder
        self._lock = threading.RLock()
        self._snapshot: _Snapshot | None = None
        self._dirty = True
        with self._chroma("open the store"):
            import chromadb
            from chromadb.config import Settings

            self.path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(self.path), settings=Settings(anonymized_telemetry=False))
            # embedding_function=None: we always pass vectors, and chroma's default would download a model.
            self._collection = self._client.get_or_create_collection(
                collection, embedding_function=None, configuration={"hnsw": {"ef_search": _EF_SEARCH}}
            )
            # A collection created before this setting (or by another version) keeps its own; raise it.
            if (self._collection.configuration_json.get("hnsw") or {}).get("ef_search", 0) < _EF_SEARCH:
                self._collection.modify(configuration={"hnsw": {"ef_search": _EF_SEARCH}})

    @contextmanager
    def _chroma(self, action: str) -> Iterator[None]:
        """Translate any chroma failure into a StoreError that says what we were doing."""
        try:
            yield
        except (StoreError, UsageError, ImportError):  # ours, or a missing package with its install hint
            raise
        except Exception as e:  # chroma raises many unrelated types (sqlite, Rust bindings, ValueError)
            raise StoreError(
                f"could not {action} in the RAG store at {str(self.path)!r}: {e}; "
                "check the folder is writable and not used by an incompatible chromadb version"
            ) from e

    def add(self, chunks: Iterable[Chunk]) -> int:
        """Store chunks, skipping ones already stored (ids are content hashes, so re-adding is idempotent).

        Returns:
            How many chunks were new.
        """
        unique = list({chunk.id: chunk for chunk in chunks}.values())
        added = 0
        with self._lock, self._chroma("add chunks"):
            for start in range(0, len(unique), _WRITE_BATCH):
                added += self._write_new(unique[start : start + _WRITE_BATCH])
            self._dirty = self._dirty or added > 0
        logger.debug("stored chunks", extra={"new": added, "skipped": len(unique) - added})
        return added

    def _write_new(self, batch: Sequence[Chunk]) -> int:
        """Embed and write the chunks of ``batch`` that are not stored yet; returns how many."""
        existing = set(self._collection.get(ids=[chunk.id for chunk in batch], include=[])["ids"])
        fresh = [chunk for chunk in batch if chunk.id not in existing]
        if not fresh:
            return 0
        vectors = self._embedder.embed([chunk.text for chunk in fresh])
        self._collection.upsert(
            ids=[chunk.id for chunk in fresh],
            documents=[chunk.text for chunk in fresh],
            embeddings=vectors,
            metadatas=[
                {"source": c.source, "start_line": c.start_line, "end_line": c.end_line, "kind": c.kind} for c in fresh
            ],
        )
        return len(fresh)

    def remove_source(self, source: str, *, keep: Iterable[str] = ()) -> int:
        """Delete a source's chunks, except the ids in ``keep`` (used when a file changed). Returns how many."""
        kept = set(keep)
        with self._lock, self._chroma("remove chunks"):
            ids = self._collection.get(where={"source": source}, include=[])["ids"]
            doomed = [chunk_id for chunk_id in ids if chunk_id not in kept]
            if doomed:
                self._collection.delete(ids=doomed)
                self._dirty = True
        return len(doomed)

    def count(self) -> int:
        """Number of stored chunks."""
        with self._lock, self._chroma("count chunks"):
            return int(self._collection.count())

    def sources(self) -> list[str]:
        """Sorted distinct sources of the stored chunks."""
        snapshot = self._current()
        return sorted({str(meta["source"]) for meta in snapshot.metadatas})

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """Hybrid search: vector and BM25 rankings fused with reciprocal rank fusion (k=60).

        Args:
            query: what to look for, in words or as an exact identifier.
            k: how many hits to return at most.

        Raises:
            UsageError: the query is empty or ``k`` is not positive.
            StoreError: chroma failed.
        """
        if not query.strip():
            raise UsageError("empty search query; pass the words or identifier to look for")
        if k < 1:
            raise UsageError(f"k={k} is not a positive number of hits; pass k >= 1")
        vector = self._embedder.embed_one(query)
        snapshot = self._current()
        if not snapshot.ids:
            return []
        limit = max(k * _CANDIDATES, 20)
        with self._lock, self._chroma("search"):
            found = self._collection.query(
                query_embeddings=vector.reshape(1, -1), n_results=min(limit, len(snapshot.ids)), include=[]
            )
        vector_ids = [chunk_id for chunk_id in found["ids"][0] if chunk_id in snapshot.position]
        bm25_ids = [snapshot.ids[i] for i in snapshot.lexical.rank(query, limit)]
        fused = reciprocal_rank_fusion([vector_ids, bm25_ids], k=RRF_K)
        best = sorted(fused, key=lambda chunk_id: -fused[chunk_id])[:k]
        return [self._hit(snapshot, chunk_id, fused[chunk_id], vector_ids, bm25_ids) for chunk_id in best]

    @staticmethod
    def _hit(snapshot: _Snapshot, chunk_id: str, score: float, vector_ids: list[str], bm25_ids: list[str]) -> Hit:
        i = snapshot.position[chunk_id]
        meta = snapshot.metadatas[i]
        return Hit(
            text=snapshot.documents[i],
            source=str(meta["source"]),
            start_line=int(meta["start_line"]),
            end_line=int(meta["end_line"]),
            score=score,
            vector_rank=vector_ids.index(chunk_id) + 1 if chunk_id in vector_ids else None,
            bm25_rank=bm25_ids.index(chunk_id) + 1 if chunk_id in bm25_ids else None,
        )

    def _current(self) -> _Snapshot:
        """The BM25 snapshot, rebuilt from chroma when this store wrote, or another writer changed the count."""
        with self._lock, self._chroma("read chunks"):
            snapshot = self._snapshot
            if snapshot is None or self._dirty or snapshot.lexical.size != self._collection.count():
                snapshot = _Snapshot(*self._read_all())
                self._snapshot, self._dirty = snapshot, False
            return snapshot

    def _read_all(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Every chunk's id, text and metadata, read page by page (one ``get`` of 100k chunks fails in SQLite)."""
        ids: list[str] = []
        documents: list[str] = []
        metadatas: list[dict[str, Any]] = []
        while True:
            page = self._collection.get(include=["documents", "metadatas"], limit=_READ_PAGE, offset=len(ids))
            ids.extend(page["ids"])
            documents.extend(doc or "" for doc in page["documents"] or [])
            metadatas.extend(dict(meta or {}) for meta in page["metadatas"] or [])
            if len(page["ids"]) < _READ_PAGE:
                return ids, documents, metadatas
