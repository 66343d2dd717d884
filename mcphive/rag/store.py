"""The document store: chunks in chromadb, searched by vectors and BM25, fused with RRF, optionally reranked.

chromadb runs embedded (``PersistentClient`` on a folder, the default) or as a server
(``HttpClient`` to ``chroma run``, for scale); both behave the same here. Embeddings always come
from :mod:`mcphive.embeddings` and are handed to chroma ready-made (``embeddings=`` /
``query_embeddings=``), so chroma never loads its default embedding function, which would try to
download a model.

The vector index is chroma's HNSW, built with :class:`HnswConfig`: chroma's search default (a
candidate list of 10) finds only a third to two thirds of the true ten nearest chunks in a
100k-chunk store; see ``benchmarks/rag_scale.py``.

Chunk texts are stored as metadata (``text``), not as chroma "documents": chroma indexes every
document in a SQLite trigram full-text table, which this store never queries (BM25 is its own),
and skipping it makes indexing about 1.5 times faster. Stores written with documents still read.

Alongside the chunks, a small second collection records each ingested file's content hash, so a
re-ingest skips unchanged files, removes deleted ones, and finishes an interrupted run.

The store is synchronous and thread-safe (one lock around chroma and the BM25 index). Async
callers run its methods in a worker thread (``anyio.to_thread.run_sync``), as the RAG MCP
server does.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from mcphive.errors import ConfigError, StoreError, UsageError
from mcphive.lexical import RRF_K, LexicalIndex, reciprocal_rank_fusion
from mcphive.rag.chunking import Chunk

if TYPE_CHECKING:
    from mcphive.embeddings import Embedder
    from mcphive.rag.rerank import Reranker
    from mcphive.settings import Settings

__all__ = ["DocumentStore", "FileRecord", "Filter", "Hit", "HnswConfig"]

logger = logging.getLogger(__name__)

_CANDIDATES = 4
"""Each ranking contributes ``k * _CANDIDATES`` candidates (at least 20) to the fusion."""
_WRITE_BATCH = 1000
_READ_PAGE = 5000
_EXACT_FILTER_MAX = 4096
"""A filter matching at most this many chunks is searched exactly (their vectors, a dot product, a small BM25)
instead of through chroma's filtered HNSW query, which costs ~60 ms at 40k chunks whatever the filter's size."""
_SUBSET_CACHE = 32
"""Chunks read per ``get``: chroma binds one SQL variable per id, and SQLite allows 32,766 in a statement."""

Filter = Mapping[str, str | int | float | bool]
"""Metadata equality filter, e.g. ``{"source": "docs/guide.md"}`` or ``{"kind": "python"}``."""


class HnswConfig(BaseModel):
    """Parameters of the collection's HNSW vector index.

    ``max_neighbors`` and ``ef_construction`` are fixed when a collection is created; ``ef_search``
    can change at any time (an existing collection is updated when it differs).

    Attributes:
        max_neighbors: graph degree (HNSW's ``M``): more gives better recall, a bigger, slower-to-build index.
        ef_construction: candidate list while inserting: larger builds a better graph, more slowly.
        ef_search: candidate list while searching: larger finds more of the true nearest chunks, more slowly.
    """

    model_config = ConfigDict(frozen=True)

    max_neighbors: int = Field(32, ge=4, le=128)
    ef_construction: int = Field(128, ge=10, le=2000)
    ef_search: int = Field(400, ge=10, le=5000)


class Hit(BaseModel):
    """One search result, with its citation.

    Attributes:
        text: the chunk's text.
        source: the document it came from.
        start_line: first line of the chunk in the source, 1-based.
        end_line: last line, inclusive.
        heading: the section (Markdown headings, ``A > B``) or definition (``def name``) the chunk is in.
        score: fused RRF score (higher is better).
        vector_rank: 1-based rank in the vector search, ``None`` when not among its candidates.
        bm25_rank: 1-based rank in the BM25 search, ``None`` when not among its candidates.
        rerank_score: the reranker's score when a reranker ordered the hits.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    source: str
    start_line: int
    end_line: int
    heading: str | None = None
    score: float
    vector_rank: int | None = None
    bm25_rank: int | None = None
    rerank_score: float | None = None


class FileRecord(BaseModel):
    """What the store remembers of one ingested file: enough to skip it when unchanged."""

    root: str
    source: str
    digest: str
    chunks: int


class _Snapshot:
    """Every stored chunk (ids, texts, metadata) and a BM25 index over them, as of one count."""

    def __init__(self, ids: list[str], documents: list[str], metadatas: list[dict[str, Any]]) -> None:
        self.ids = ids
        self.documents = documents
        self.metadatas = metadatas
        self.position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.lexical = LexicalIndex(documents)
        self._by_field: dict[str, dict[Any, list[int]]] = {}
        self._subsets: OrderedDict[tuple[tuple[str, Any], ...], LexicalIndex] = OrderedDict()

    def matching(self, where: Filter) -> list[int]:
        """Positions (ascending) of the chunks whose metadata equals every pair of ``where``."""
        found: set[int] | None = None
        for field, value in where.items():
            index = self._by_field.get(field)
            if index is None:  # one pass per field, then every value of it is a lookup
                index = {}
                for i, meta in enumerate(self.metadatas):
                    index.setdefault(meta.get(field), []).append(i)
                self._by_field[field] = index
            positions = index.get(value, [])
            found = set(positions) if found is None else found & set(positions)
        return sorted(found or ())

    def subset_lexical(self, where: Filter, positions: list[int]) -> LexicalIndex:
        """A BM25 index over just ``positions`` (the chunks ``where`` matches), kept for the latest filters."""
        key = tuple(sorted(where.items()))
        index = self._subsets.get(key)
        if index is None:
            index = LexicalIndex([self.documents[i] for i in positions])
            self._subsets[key] = index
            while len(self._subsets) > _SUBSET_CACHE:
                self._subsets.popitem(last=False)
        self._subsets.move_to_end(key)
        return index


@contextmanager
def _quiet_legacy_config() -> Iterator[None]:
    """Loading a collection made with ``embedding_function=None`` (ours: we pass vectors) makes chroma warn that its
    embedding-function config is "legacy"; under warnings-as-errors chroma then refuses the collection."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="legacy embedding function config", category=DeprecationWarning)
        yield


def _close_http_session(client: Any) -> None:
    """Close the HTTP connections of a chroma ``HttpClient`` whose last user closed it.

    chroma stops a client's shared system on the last ``close()`` but leaves its ``httpx.Client``
    open (its sockets linger until garbage collection), so close that too once nobody shares it.
    """
    from chromadb.api.shared_system_client import SharedSystemClient

    if getattr(client, "_identifier", None) in SharedSystemClient._identifier_to_system:
        return  # another client in this process still uses the same connection pool
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is not None:
        session.close()


def _chroma_where(where: Filter | None) -> dict[str, Any] | None:
    if not where:
        return None
    clauses = [{field: value} for field, value in sorted(where.items())]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _metadata(chunk: Chunk) -> dict[str, str | int]:
    meta: dict[str, str | int] = {
        "source": chunk.source,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "kind": chunk.kind,
    }
    if chunk.heading:
        meta["heading"] = chunk.heading
    meta["text"] = chunk.text
    return meta


class DocumentStore:
    """Chunks persisted by chromadb, searched with hybrid (vector + BM25) retrieval.

    Pass ``path`` for an embedded store in a folder, or ``url`` for a chroma server.

    Args:
        path: folder of the chroma database (created if missing).
        embedder: the embedder to use; defaults to the process-wide :func:`~mcphive.embeddings.get_embedder`.
        collection: chroma collection name.
        url: a chroma server (``http://host:port``), instead of ``path``.
        hnsw: vector-index parameters (defaults: :class:`HnswConfig`).
        reranker: reorders the best fused candidates (none by default).
        rerank_depth: how many fused candidates the reranker sees (at least ``k``).
        refresh_s: how often (at most) a search checks whether another store changed the collection;
            this store's own writes show at once. Counting a large collection costs milliseconds.

    Raises:
        UsageError: neither or both of ``path`` and ``url``, or a malformed ``url``.
        StoreError: chroma cannot open the database at ``path``, or the server at ``url`` is unreachable.
    """

    def __init__(
        self,
        path: Path | None = None,
        embedder: Embedder | None = None,
        collection: str = "docs",
        *,
        url: str | None = None,
        hnsw: HnswConfig | None = None,
        reranker: Reranker | None = None,
        rerank_depth: int = 20,
        refresh_s: float = 1.0,
    ) -> None:
        if (path is None) == (url is None):
            raise UsageError("a DocumentStore needs exactly one of path= (embedded chroma) or url= (chroma server)")
        if embedder is None:
            from mcphive.embeddings import get_embedder

            embedder = get_embedder()
        self.path = Path(path) if path is not None else None
        self.url = url
        self.location = str(self.path) if self.path is not None else str(url)
        self.hnsw = hnsw or HnswConfig()
        self._embedder = embedder
        self._reranker = reranker
        self._rerank_depth = rerank_depth
        self._refresh_s = refresh_s
        self._checked = 0.0
        self._lock = threading.RLock()
        self._snapshot: _Snapshot | None = None
        self._dirty = True
        self._pool: ThreadPoolExecutor | None = None
        self._files_collection: Any = None
        self._collection_name = collection
        self._client: Any = None
        with self._chroma("open the store"), _quiet_legacy_config():
            self._client = self._connect()
            self._collection = self._open_collection(collection)
            self._align_index(self._collection.configuration_json.get("hnsw") or {})

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None) -> DocumentStore:
        """The store ``settings`` describe: a chroma server at ``rag_chroma_url``, else the folder ``rag_dir``."""
        from mcphive.rag.rerank import make_reranker

        hnsw = HnswConfig(
            max_neighbors=settings.rag_hnsw_max_neighbors,
            ef_construction=settings.rag_hnsw_ef_construction,
            ef_search=settings.rag_hnsw_ef_search,
        )
        reranker = make_reranker(settings.rag_reranker, settings.rag_cross_encoder_path)
        if settings.rag_chroma_url:
            return cls(embedder=embedder, url=settings.rag_chroma_url, hnsw=hnsw, reranker=reranker)
        return cls(settings.rag_dir, embedder, hnsw=hnsw, reranker=reranker)

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(self.path), settings=chroma_settings)
        parts = urlsplit(str(self.url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"rag_chroma_url {self.url!r} is not an http(s) URL; use e.g. http://127.0.0.1:8000")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 8000)
        except ValueError as e:
            raise ConfigError(f"rag_chroma_url {self.url!r} has a bad port; use e.g. http://127.0.0.1:8000") from e
        return chromadb.HttpClient(
            host=parts.hostname, port=port, ssl=parts.scheme == "https", settings=chroma_settings
        )

    def _open_collection(self, name: str) -> Any:
        """The chunk collection: an existing one as it is, else a new one with this store's HNSW parameters."""
        from chromadb.errors import NotFoundError

        # embedding_function=None: we always pass vectors, and chroma's default would download a model.
        with _quiet_legacy_config():
            try:
                return self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                configuration = {"hnsw": self.hnsw.model_dump()}
                return self._client.get_or_create_collection(name, embedding_function=None, configuration=configuration)

    def _align_index(self, current: Mapping[str, Any]) -> None:
        """Apply ``ef_search`` to an existing collection; report build parameters it was created with.

        chroma applies a changed ``ef_search`` when it next loads the index (a new process, or the
        first store on that folder or server since the change), not to an index already in memory.
        """
        if current.get("ef_search") != self.hnsw.ef_search:
            self._collection.modify(configuration={"hnsw": {"ef_search": self.hnsw.ef_search}})
        built = (current.get("max_neighbors"), current.get("ef_construction"))
        if built != (self.hnsw.max_neighbors, self.hnsw.ef_construction):
            logger.info(
                "RAG collection keeps the HNSW build parameters it was created with; re-create it to change them",
                extra={"max_neighbors": built[0], "ef_construction": built[1], "store": self.location},
            )

    @contextmanager
    def _chroma(self, action: str) -> Iterator[None]:
        """Translate any chroma failure into a StoreError that says what we were doing and what to do."""
        try:
            yield
        except (StoreError, UsageError, ImportError):  # ours, or a missing package with its install hint
            raise
        except Exception as e:  # chroma raises many unrelated types (sqlite, httpx, Rust bindings, ValueError)
            if self.url is not None:
                raise StoreError(
                    f"could not {action} in the RAG store at the chroma server {self.url}: {e}; check that the "
                    "server is running (`chroma run --path DIR --host HOST --port PORT`) and that rag_chroma_url "
                    "points at it, then retry (an interrupted ingest resumes where it stopped)"
                ) from e
            raise StoreError(
                f"could not {action} in the RAG store at {self.location!r}: {e}; "
                "check the folder is writable and not used by an incompatible chromadb version"
            ) from e

    def close(self) -> None:
        """Release the chroma client (its connections to a server) and the helper thread; idempotent.

        The store is not usable afterwards. Other stores on the same folder or server are unaffected.
        """
        with self._lock:
            pool, self._pool = self._pool, None
            client, self._client = self._client, None
        if pool is not None:
            pool.shutdown(wait=True)
        if client is not None:
            client.close()
            if self.url is not None:
                _close_http_session(client)

    def __enter__(self) -> DocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------------------

    def add(self, chunks: Iterable[Chunk]) -> int:
        """Store chunks, skipping ones already stored (ids are content hashes, so re-adding is idempotent).

        Returns:
            How many chunks were new.
        """
        unique = list({chunk.id: chunk for chunk in chunks}.values())
        added = 0
        with self._lock, self._chroma("add chunks"):
            try:
                for start in range(0, len(unique), _WRITE_BATCH):
                    added += self._write_new(unique[start : start + _WRITE_BATCH])
            finally:
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
            ids=[chunk.id for chunk in fresh], embeddings=vectors, metadatas=[_metadata(chunk) for chunk in fresh]
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

    # -- the file manifest (incremental ingest) -----------------------------------------------------------------

    def _files(self) -> Any:
        """The collection of file records (one dimension-1 placeholder vector each; only metadata matters)."""
        if self._files_collection is None:
            with _quiet_legacy_config():
                self._files_collection = self._client.get_or_create_collection(
                    f"{self._collection_name}-files", embedding_function=None
                )
        return self._files_collection

    @staticmethod
    def _file_id(root: str, source: str) -> str:
        return hashlib.sha1(f"{root}\0{source}".encode(), usedforsecurity=False).hexdigest()

    def files(self, root: str) -> dict[str, FileRecord]:
        """The files recorded as completely ingested from ``root``, by source."""
        with self._lock, self._chroma("read the file records"):
            found = self._files().get(where={"root": root}, include=["metadatas"])
        records = [FileRecord.model_validate(meta) for meta in found["metadatas"] or []]
        return {record.source: record for record in records}

    def record_file(self, record: FileRecord) -> None:
        """Remember that ``record.source`` is stored completely with this content hash."""
        with self._lock, self._chroma("record an ingested file"):
            self._files().upsert(
                ids=[self._file_id(record.root, record.source)], embeddings=[[0.0]], metadatas=[record.model_dump()]
            )

    def forget_file(self, root: str, source: str) -> int:
        """Remove a file's chunks and its record (the file was deleted). Returns how many chunks went."""
        removed = self.remove_source(source)
        with self._lock, self._chroma("forget a file"):
            self._files().delete(ids=[self._file_id(root, source)])
        return removed

    # -- reading ------------------------------------------------------------------------------------------------

    def count(self) -> int:
        """Number of stored chunks."""
        with self._lock, self._chroma("count chunks"):
            return int(self._collection.count())

    def sources(self) -> list[str]:
        """Sorted distinct sources of the stored chunks."""
        snapshot = self._current()
        return sorted({str(meta["source"]) for meta in snapshot.metadatas})

    def search(self, query: str, k: int = 5, *, where: Filter | None = None) -> list[Hit]:
        """Hybrid search: vector and BM25 rankings fused with reciprocal rank fusion (k=60), then reranked.

        The BM25 ranking runs on a helper thread while the query is embedded (the model releases the GIL).

        Args:
            query: what to look for, in words or as an exact identifier.
            k: how many hits to return at most.
            where: only chunks whose metadata equals each of these pairs (e.g. ``{"source": "a.md"}``).

        Raises:
            UsageError: the query is empty or ``k`` is not positive.
            StoreError: chroma failed.
        """
        if not query.strip():
            raise UsageError("empty search query; pass the words or identifier to look for")
        if k < 1:
            raise UsageError(f"k={k} is not a positive number of hits; pass k >= 1")
        depth = max(k, self._rerank_depth) if self._reranker is not None else k
        limit = max(depth * _CANDIDATES, 20)
        lexical = self._helper().submit(self._lexical_ranking, query, limit, where)
        try:
            vector = self._embedder.embed_one(query)
        finally:
            snapshot, bm25_ids = lexical.result()
        if not snapshot.ids:
            return []
        vector_ids = self._vector_ranking(snapshot, vector, limit, where)
        fused = reciprocal_rank_fusion([vector_ids, bm25_ids], k=RRF_K)
        best = sorted(fused, key=lambda chunk_id: -fused[chunk_id])[:depth]
        vector_rank = {chunk_id: rank for rank, chunk_id in enumerate(vector_ids, start=1)}
        bm25_rank = {chunk_id: rank for rank, chunk_id in enumerate(bm25_ids, start=1)}
        hits = [self._hit(snapshot, chunk_id, fused[chunk_id], vector_rank, bm25_rank) for chunk_id in best]
        if self._reranker is not None:
            hits = self._reranker.rerank(query, hits)
        return hits[:k]

    def _helper(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-bm25")
            return self._pool

    def _lexical_ranking(self, query: str, limit: int, where: Filter | None) -> tuple[_Snapshot, list[str]]:
        """The current snapshot and the BM25 ranking of ``query`` in it (only matching chunks under ``where``)."""
        snapshot = self._current()
        if not where:
            return snapshot, [snapshot.ids[i] for i in snapshot.lexical.rank(query, limit)]
        allowed = snapshot.matching(where)
        if len(allowed) <= _EXACT_FILTER_MAX:
            ranked = snapshot.subset_lexical(where, allowed).rank(query, limit)
            return snapshot, [snapshot.ids[allowed[i]] for i in ranked]
        permitted = set(allowed)
        matching = (i for i in snapshot.lexical.rank(query) if i in permitted)
        return snapshot, [snapshot.ids[i] for _, i in zip(range(limit), matching, strict=False)]

    def _vector_ranking(self, snapshot: _Snapshot, vector: Any, limit: int, where: Filter | None) -> list[str]:
        """Chunk ids nearest to ``vector``: HNSW, or exact over the few chunks a filter leaves."""
        import numpy as np

        with self._lock, self._chroma("search"):
            allowed = snapshot.matching(where) if where else None
            if allowed is not None and len(allowed) <= _EXACT_FILTER_MAX:
                ids = [snapshot.ids[i] for i in allowed]
                if not ids:
                    return []
                found = self._collection.get(ids=ids, include=["embeddings"])
                similarity = np.asarray(found["embeddings"], dtype=np.float32) @ vector
                order = np.argsort(-similarity, kind="stable")[:limit]
                return [found["ids"][i] for i in order]
            result = self._collection.query(
                query_embeddings=vector.reshape(1, -1),
                n_results=min(limit, len(snapshot.ids)),
                where=_chroma_where(where),
                include=[],
            )
        return [chunk_id for chunk_id in result["ids"][0] if chunk_id in snapshot.position]

    @staticmethod
    def _hit(
        snapshot: _Snapshot, chunk_id: str, score: float, vector_rank: dict[str, int], bm25_rank: dict[str, int]
    ) -> Hit:
        i = snapshot.position[chunk_id]
        meta = snapshot.metadatas[i]
        heading = meta.get("heading")
        return Hit(
            text=snapshot.documents[i],
            source=str(meta["source"]),
            start_line=int(meta["start_line"]),
            end_line=int(meta["end_line"]),
            heading=str(heading) if heading else None,
            score=score,
            vector_rank=vector_rank.get(chunk_id),
            bm25_rank=bm25_rank.get(chunk_id),
        )

    def _current(self) -> _Snapshot:
        """The BM25 snapshot, rebuilt when this store wrote, or (checked every ``refresh_s``) the count changed."""
        with self._lock, self._chroma("read chunks"):
            snapshot = self._snapshot
            now = time.monotonic()
            if snapshot is not None and not self._dirty and now - self._checked < self._refresh_s:
                return snapshot
            if snapshot is None or self._dirty or snapshot.lexical.size != self._collection.count():
                snapshot = _Snapshot(*self._read_all())
                self._snapshot, self._dirty = snapshot, False
            self._checked = time.monotonic()
            return snapshot

    def _read_all(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Every chunk's id, text and metadata, read page by page (one ``get`` of 100k chunks fails in SQLite)."""
        ids: list[str] = []
        documents: list[str] = []
        metadatas: list[dict[str, Any]] = []
        while True:
            page = self._collection.get(include=["documents", "metadatas"], limit=_READ_PAGE, offset=len(ids))
            ids.extend(page["ids"])
            for document, stored in zip(page["documents"] or [], page["metadatas"] or [], strict=True):
                meta = dict(stored or {})
                documents.append(str(meta.pop("text", None) or document or ""))
                metadatas.append(meta)
            if len(page["ids"]) < _READ_PAGE:
                return ids, documents, metadatas
