"""RAG at scale: 100,000 chunks of real text in the DocumentStore (chromadb + bm25s), queried with real MiniLM.

The chunk texts are real: the Python standard library and site-packages sources and docs on this
machine, cut by :func:`mcphive.rag.chunking.chunk_document`. Embedding 100k chunks with MiniLM on a
2-core box takes hours, so only a random 2,000-chunk sample is embedded for real (that run gives
the embed+index throughput); every other chunk gets a *synthetic but clustered* vector: a real
sample vector plus Gaussian noise, re-normalised, so the vector space has the cluster structure of
real embeddings. Query embeddings are always real (MiniLM on the query text, included in latency).

Measured: index-only ingest rate (vectors ready, as when re-indexing from cache), embed+index rate,
first-query BM25 build time, hybrid query p50/p99 (query embedding + chroma HNSW + BM25 + RRF),
metadata-filtered vector query p99 (``where={"source": ...}``), recall@10 of chroma's HNSW search
against exact numpy search, disk size and peak RSS.

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
from mcphive.rag.chunking import Chunk, chunk_document
from mcphive.rag.store import DocumentStore

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
    exact: tuple[npt.NDArray[np.float32], dict[str, int]],
) -> dict[str, Any]:
    """Each part of a query timed alone, the source-filtered query, and recall@10 of HNSW against exact search.

    ``exact`` is every stored vector, one row per chunk, and the row of each chunk id.
    """
    matrix, position = exact
    snapshot = store._current()
    collection = store._collection
    parts: dict[str, list[float]] = {"embed": [], "chroma_hnsw": [], "bm25": [], "filtered": []}
    recalls = []
    for query, source in zip(queries, sources, strict=True):
        ms, vector = _timed(real.embed, [query + " ?"])  # a fresh text: not an embedder cache hit
        parts["embed"].append(ms)
        ms, found = _timed(collection.query, query_embeddings=vector, n_results=10, include=[])
        parts["chroma_hnsw"].append(ms)
        parts["bm25"].append(_timed(snapshot.lexical.rank, query, 40)[0])
        best = {int(i) for i in np.argsort(-(matrix @ vector[0]))[:10]}
        recalls.append(len({position[i] for i in found["ids"][0]} & best) / 10)
        t0 = time.perf_counter()
        filtered = real.embed([query + " !"])
        collection.query(query_embeddings=filtered, n_results=10, include=[], where={"source": source})
        parts["filtered"].append((time.perf_counter() - t0) * 1000)
    return {"parts": parts, "recall": statistics.fmean(recalls)}


def _row(name: str, values: list[float]) -> dict[str, float]:
    return {f"{name}_p50_ms": round(percentile(values, 50), 2), f"{name}_p99_ms": round(percentile(values, 99), 2)}


def measure(work: Path, chunks: list[Chunk], sample_size: int) -> dict[str, Any]:
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
    store = DocumentStore(work / "big", embedder=TableEmbedder(table, real))
    index_only_per_s, steps = ingest(store, prng.sample(ordered, len(ordered)))
    print(f"index-only {index_only_per_s:.0f} chunks/s (per 10k step: {steps})", flush=True)

    queries = [_query_text(prng.choice(ordered), prng) for _ in range(_QUERIES)]
    bm25_build_ms, _ = _timed(store.search, "warm up the BM25 snapshot", k=10)
    latencies = [_timed(store.search, q, k=10)[0] for q in queries]
    sources = [c.source for c in prng.sample(ordered, _QUERIES)]
    detail = query_parts(store, real, queries, sources, (vectors, {c.id: i for i, c in enumerate(ordered)}))
    parts = detail["parts"]
    return {
        "chunks": len(ordered),
        "index_only_per_s": round(index_only_per_s, 1),
        "embed_index_per_s": round(embed_index_per_s, 1),
        **_row("query", latencies),
        "filtered_p99_ms": round(percentile(parts["filtered"], 99), 2),
        "recall_at_10": round(detail["recall"], 4),
        "filtered_p50_ms": round(percentile(parts["filtered"], 50), 2),
        "index_only_per_10k_step": steps,
        "bm25_snapshot_build_s": round(bm25_build_ms / 1000, 2),
        "query_parts": {**_row("embed", parts["embed"]), **_row("chroma_hnsw", parts["chroma_hnsw"])}
        | _row("bm25", parts["bm25"]),
        "disk_mb": round(_disk(work / "big") / 2**20, 1),
        "vectors": f"{len(sample)} real MiniLM (sample), the rest synthetic: real sample vector + N(0,{_NOISE})",
        "queries": _QUERIES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=_SAMPLE, help="chunks embedded for real")
    args = parser.parse_args()
    started = time.perf_counter()
    chunks = real_chunks(args.chunks)
    print(f"{len(chunks)} real chunks collected in {time.perf_counter() - started:.1f} s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="rag-scale-"))
    try:
        results = measure(work, chunks, args.sample)
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
    print(f"wrote {write('rag_scale', results)}")


if __name__ == "__main__":
    main()
