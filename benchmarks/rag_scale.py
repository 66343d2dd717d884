"""RAG at scale: 100,000 chunks of real text in the DocumentStore (chromadb + bm25s), queried with real MiniLM.

The chunk texts are real: the Python standard library and site-packages sources and docs on this
machine, cut by :func:`mcphive.rag.chunking.chunk_document`. Embedding 100k chunks with MiniLM on a
2-core box takes hours, so only a random 2,000-chunk sample is embedded for real (that run gives
the embed+index throughput); every other chunk gets a *synthetic but clustered* vector: a real
sample vector plus Gaussian noise, re-normalised, so the vector space has the cluster structure of
real embeddings. Query embeddings are always real (MiniLM on the query text, included in latency).

Measured: index-only ingest rate (vectors ready, as when re-indexing from cache), embed+index rate,
first-query BM25 build time, hybrid query p50/p99 through ``DocumentStore.search`` (query embedding,
chroma HNSW, BM25 and RRF), each part alone, metadata-filtered search p99
(``where={"source": ...}``), disk size and peak RSS, and two recalls:

- ``recall_at_10``: the dense component alone. The store's HNSW top 10 (its configured
  ``ef_search``) against the exact top 10 by brute-force cosine over the very vectors stored,
  for the same query vector. A returned chunk counts when its exact similarity reaches the exact
  10th best (so exact ties, such as duplicate texts, are not misses).
- ``hybrid_agreement_at_10``: the whole hybrid result. ``search()``'s top 10 against the same
  fusion computed with the exact dense ranking (same BM25 ranking, same RRF): how much the
  approximate index changes what a user gets.

Run: ``OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/rag_scale.py [--chunks N]``
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentile, write

from mcphive.embeddings import Embedder, get_embedder
from mcphive.lexical import RRF_K, reciprocal_rank_fusion
from mcphive.rag.chunking import Chunk, chunk_document
from mcphive.rag.store import DocumentStore, HnswConfig

_SAMPLE = 2000
_QUERIES = 200
_NOISE = 0.045
"""Per-dimension noise around a real vector: cosine to its centre ~0.7, like near-duplicate code chunks."""
_SUFFIXES = (".py", ".md", ".rst", ".txt")


def _roots() -> list[Path]:
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    return [root for root in roots if root.is_dir()]


def _files() -> Iterator[Path]:
    for root in _roots():
        for path in sorted(root.rglob("*")):
            if path.suffix in _SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                yield path


def real_chunks(limit: int) -> list[Chunk]:
    """Up to ``limit`` distinct chunks of the installed Python sources and docs."""
    seen: dict[str, Chunk] = {}
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for chunk in chunk_document(text, str(path)):
            if chunk.text.strip():
                seen.setdefault(chunk.id, chunk)
        if len(seen) >= limit:
            break
    return list(seen.values())[:limit]


class TableEmbedder(Embedder):
    """Serves precomputed vectors for known texts and falls back to real MiniLM for the rest (queries)."""

    def __init__(self, table: dict[str, npt.NDArray[np.float32]], real: Embedder) -> None:
        super().__init__()
        self._table = table
        self._real = real

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
        if all(text in self._table for text in texts):
            return np.stack([self._table[text] for text in texts]) if texts else np.zeros((0, self.dim), np.float32)
        return self._real.embed(texts, batch_size=batch_size)


def clustered(centres: npt.NDArray[np.float32], count: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """``count`` unit vectors scattered around randomly chosen ``centres``."""
    picks = rng.integers(0, len(centres), size=count)
    out = centres[picks] + rng.normal(0.0, _NOISE, size=(count, centres.shape[1])).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def _query_text(chunk: Chunk, rng: random.Random) -> str:
    words = chunk.text.split()
    start = rng.randrange(max(1, len(words) - 8))
    return " ".join(words[start : start + 8]) or "open a file"


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed(action: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, result


def ingest(store: DocumentStore, chunks: list[Chunk]) -> tuple[float, list[float]]:
    """Add ``chunks`` in 10k steps; the overall rate and each step's rate (chunks/s)."""
    steps, t0 = [], time.perf_counter()
    for start in range(0, len(chunks), 10_000):
        s0 = time.perf_counter()
        store.add(chunks[start : start + 10_000])
        steps.append(round(min(10_000, len(chunks) - start) / (time.perf_counter() - s0), 1))
    return len(chunks) / (time.perf_counter() - t0), steps


def query_parts(
    store: DocumentStore,
    real: Embedder,
    queries: list[str],
    sources: list[str],
    exact: tuple[npt.NDArray[np.float32], dict[str, int], list[str]],
) -> dict[str, Any]:
    """Each part of a query timed alone, the source-filtered search, and both recalls (see the module doc).

    ``exact`` is every stored vector (one row per chunk), the row of each chunk id, and the id of each row.
    """
    matrix, position, row_ids = exact
    snapshot = store._current()
    collection = store._collection
    candidates = 40  # what search(k=10) asks each ranking for
    parts: dict[str, list[float]] = {"embed": [], "chroma_hnsw": [], "bm25": [], "filtered": []}
    recalls, agreements, vectors = [], [], []
    for query, source in zip(queries, sources, strict=True):
        fresh = query + " ?"  # a text not seen before: no embedder cache hit
        ms, vector = _timed(real.embed, [fresh])
        parts["embed"].append(ms)
        vectors.append(vector)
        ms, found = _timed(collection.query, query_embeddings=vector, n_results=candidates, include=[])
        parts["chroma_hnsw"].append(ms)
        ms, bm25_rows = _timed(snapshot.lexical.rank, fresh, candidates)
        parts["bm25"].append(ms)

        similarity = matrix @ vector[0]
        exact_rows = np.argsort(-similarity)[:candidates]
        tenth = similarity[exact_rows[9]] - 1e-6
        recalls.append(sum(similarity[position[i]] >= tenth for i in found["ids"][0][:10]) / 10)

        bm25_ids = [snapshot.ids[i] for i in bm25_rows]
        exact_fused = reciprocal_rank_fusion([[row_ids[i] for i in exact_rows], bm25_ids], k=RRF_K)
        best = set(sorted(exact_fused, key=lambda chunk_id: -exact_fused[chunk_id])[:10])
        hybrid = store.search(fresh, k=10)
        got = {Chunk(text=h.text, source=h.source, start_line=h.start_line, end_line=h.end_line, kind="text").id
               for h in hybrid}  # fmt: skip
        agreements.append(len(got & best) / max(1, min(10, len(best))))

        parts["filtered"].append(_timed(store.search, query + " !", k=10, where={"source": source})[0])
    return {
        "parts": parts,
        "recall": statistics.fmean(recalls),
        "agreement": statistics.fmean(agreements),
        "vectors": vectors,
    }


def dense_recall(
    collection: Any, vectors: list[Any], matrix: npt.NDArray[np.float32], position: dict[str, int]
) -> float:
    """Mean tie-aware recall@10 of the collection's HNSW search against exact search, over query ``vectors``."""
    recalls = []
    for vector in vectors:
        similarity = matrix @ vector[0]
        tenth = np.partition(-similarity, 9)[9] * -1 - 1e-6
        found = collection.query(query_embeddings=vector, n_results=10, include=[])["ids"][0]
        recalls.append(sum(similarity[position[i]] >= tenth for i in found) / 10)
    return statistics.fmean(recalls)


def ef_sweep(
    path: Path, embedder: Embedder, hnsw: HnswConfig, vectors: list[Any], exact: tuple[Any, dict[str, int], list[str]]
) -> list[dict[str, float]]:
    """Dense recall@10 and HNSW latency at several ``ef_search`` values, reopening the store for each.

    chroma applies a changed ``ef_search`` when the index loads, so each value gets a freshly opened store.
    """
    rows = []
    for ef in sorted({128, 256, 400, 512, 800, hnsw.ef_search}):
        with DocumentStore(path, embedder, hnsw=hnsw.model_copy(update={"ef_search": ef})) as store:
            collection = store._collection
            collection.query(query_embeddings=vectors[0], n_results=10, include=[])  # load the index
            latencies = [_timed(collection.query, query_embeddings=v, n_results=40, include=[])[0] for v in vectors]
            recall = dense_recall(collection, vectors, exact[0], exact[1])
        rows.append({"ef_search": ef, "recall_at_10": round(recall, 4), **_row("chroma_hnsw", latencies)})
        print(f"ef_search {ef}: recall@10 {recall:.4f}, HNSW p50 {percentile(latencies, 50):.2f} ms", flush=True)
    return rows


def _row(name: str, values: list[float]) -> dict[str, float]:
    return {f"{name}_p50_ms": round(percentile(values, 50), 2), f"{name}_p99_ms": round(percentile(values, 99), 2)}


def measure(work: Path, chunks: list[Chunk], sample_size: int, hnsw: HnswConfig) -> dict[str, Any]:
    """Every measurement of the benchmark on ``chunks``, with stores under ``work``."""
    rng, prng = np.random.default_rng(7), random.Random(7)
    real = get_embedder()
    real.embed(["warm up the model"])
    sample = prng.sample(chunks, min(sample_size, len(chunks)))
    t0 = time.perf_counter()
    DocumentStore(work / "sample", embedder=real).add(sample)  # embed + index, for real
    embed_index_per_s = len(sample) / (time.perf_counter() - t0)
    sample_vectors = real.embed([c.text for c in sample])
    print(f"embed+index {embed_index_per_s:.1f} chunks/s on {len(sample)} real chunks", flush=True)

    sample_ids = {c.id for c in sample}
    ordered = sample + [c for c in chunks if c.id not in sample_ids]
    vectors = np.concatenate([sample_vectors, clustered(sample_vectors, len(ordered) - len(sample), rng)])
    table = {c.text: vectors[i] for i, c in enumerate(ordered)}
    # Duplicate texts (same text in two files) share one vector: keep the exact search consistent.
    vectors = np.stack([table[c.text] for c in ordered])
    table_embedder = TableEmbedder(table, real)
    store = DocumentStore(work / "big", embedder=table_embedder, hnsw=hnsw)
    index_only_per_s, steps = ingest(store, prng.sample(ordered, len(ordered)))
    print(f"index-only {index_only_per_s:.0f} chunks/s (per 10k step: {steps})", flush=True)

    queries = [_query_text(prng.choice(ordered), prng) for _ in range(_QUERIES)]
    bm25_build_ms, _ = _timed(store.search, "warm up the BM25 snapshot", k=10)
    latencies = [_timed(store.search, q, k=10)[0] for q in queries]
    sources = [c.source for c in prng.sample(ordered, _QUERIES)]
    exact = (vectors, {c.id: i for i, c in enumerate(ordered)}, [c.id for c in ordered])
    detail = query_parts(store, real, queries, sources, exact)
    parts = detail["parts"]
    store.close()
    sweep = ef_sweep(work / "big", table_embedder, hnsw, detail["vectors"], exact)
    return {
        "chunks": len(ordered),
        "index_only_per_s": round(index_only_per_s, 1),
        "embed_index_per_s": round(embed_index_per_s, 1),
        **_row("query", latencies),
        "filtered_p99_ms": round(percentile(parts["filtered"], 99), 2),
        "recall_at_10": round(detail["recall"], 4),
        "hybrid_agreement_at_10": round(detail["agreement"], 4),
        "recall_definition": "recall_at_10: dense HNSW top 10 vs exact brute-force cosine top 10 over the same stored "
        "vectors and query vector (ties at the 10th count); hybrid_agreement_at_10: search() top 10 vs the same BM25 "
        "+ RRF fusion over the exact dense ranking",
        "hnsw": hnsw.model_dump(),
        "ef_search_sweep": sweep,
        "filtered_p50_ms": round(percentile(parts["filtered"], 50), 2),
        "index_only_per_10k_step": steps,
        "bm25_snapshot_build_s": round(bm25_build_ms / 1000, 2),
        "query_parts": {**_row("embed", parts["embed"]), **_row("chroma_hnsw", parts["chroma_hnsw"])}
        | _row("bm25", parts["bm25"]),
        "query_parts_note": "search() runs BM25 on a helper thread while the query is embedded, so the parts "
        "overlap; chroma_hnsw asks for 40 candidates as search(k=10) does",
        "disk_mb": round(_disk(work / "big") / 2**20, 1),
        "vectors": f"{len(sample)} real MiniLM (sample), the rest synthetic: real sample vector + N(0,{_NOISE})",
        "queries": _QUERIES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=_SAMPLE, help="chunks embedded for real")
    defaults = HnswConfig()
    parser.add_argument("--max-neighbors", type=int, default=defaults.max_neighbors)
    parser.add_argument("--ef-construction", type=int, default=defaults.ef_construction)
    parser.add_argument("--ef-search", type=int, default=defaults.ef_search)
    parser.add_argument("--no-write", action="store_true", help="print the results only (for parameter sweeps)")
    args = parser.parse_args()
    hnsw = HnswConfig(max_neighbors=args.max_neighbors, ef_construction=args.ef_construction, ef_search=args.ef_search)
    started = time.perf_counter()
    chunks = real_chunks(args.chunks)
    print(f"{len(chunks)} real chunks collected in {time.perf_counter() - started:.1f} s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="rag-scale-"))
    try:
        results = measure(work, chunks, args.sample, hnsw)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["targets"] = {
        "index_only_per_s": 1000,
        "query_p50_ms": 25,
        "query_p99_ms": 60,
        "filtered_p99_ms": 150,
        "recall_at_10": 0.98,
    }
    for key, value in results.items():
        print(f"{key:>24}: {value}")
    if not args.no_write:
        print(f"wrote {write('rag_scale', results)}")


if __name__ == "__main__":
    main()
