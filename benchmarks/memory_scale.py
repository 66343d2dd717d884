"""Episodic memory at scale: record_many throughput and scoped recall latency on SQLite and PostgreSQL.

Episode texts are real sentences (lines of the Python docs and docstrings installed on this
machine). Embedding a million texts with MiniLM on 2 cores takes far too long, so the store gets
*synthetic but clustered* vectors: 300 real MiniLM vectors as centres, a bank of 20,000 noisy
unit vectors around them, and each text mapped to a bank row by its CRC32. Recall queries are
embedded for real (MiniLM) and that time is inside ``recall_*_ms``; ``recall_store_*_ms`` is the
same recall with a synthetic query vector, i.e. the store alone.

Layout: 1,000 tenants of 10 threads each get 95% of the episodes (a scope = one tenant, ~950
episodes at 1M), and one large tenant gets 5%. Random-tenant recalls mostly miss the store's
64-scope cache, so they include loading the scope from the database (the realistic cold case).

The run records in batches of 2,000 (``record_many``: one redaction pass, one transaction, one
executemany on SQLite or one ``COPY`` on PostgreSQL) up to ``--episodes`` or until ``--budget-s`` of
recording is spent per backend, measuring at each checkpoint, so the size reached is reported
honestly. At the end the query plans of the scope queries recall runs are recorded (``plans``), to
show that they still narrow by the tenant indexes, and the load average of the machine with them.

Run: ``OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/memory_scale.py [--episodes N]``
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import sysconfig
import tempfile
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from _common import percentile, write
from _pg import PostgresUnavailable, postgres_cluster
from sqlalchemy import ClauseElement, text

from mcphive.embeddings import get_embedder
from mcphive.memory._recall_store import SyncEpisodeStore, _load_query, _redacted, _redacted_batch, _version_query
from mcphive.memory.episodes import Episode, RecallScope

_TENANTS = 1000
_THREADS = 10
_BATCH = 2000
_RECALLS = 100
_BANK = 20_000
_CHECKPOINTS = (10_000, 100_000, 300_000, 1_000_000)


def real_lines(limit: int = 60_000) -> list[str]:
    """Distinct prose-like lines of the installed Python docs and sources."""
    found: dict[str, None] = {}
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for line in text.splitlines():
            line = line.strip().lstrip("#").strip()
            if len(line) > 30 and " " in line and line[0].isalpha():
                found[line] = None
        if len(found) >= limit:
            break
    return list(found)


class BankEmbedder:
    """Clustered synthetic vectors by text hash; real MiniLM for queries while ``real_queries`` is set."""

    def __init__(self, centres: npt.NDArray[np.float32], rng: np.random.Generator) -> None:
        picks = rng.integers(0, len(centres), size=_BANK)
        bank = centres[picks] + rng.normal(0.0, 0.045, size=(_BANK, centres.shape[1])).astype(np.float32)
        self.bank = (bank / np.linalg.norm(bank, axis=1, keepdims=True)).astype(np.float32)
        self.real_queries = True

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.real_queries and len(texts) == 1 and texts[0].startswith("recall:"):
            return np.asarray(get_embedder().embed(list(texts)), dtype=np.float32)
        rows: npt.NDArray[np.float32] = self.bank[[zlib.crc32(text.encode()) % _BANK for text in texts]]
        return rows


def _episodes(lines: list[str], start: int, count: int, rng: random.Random) -> list[Episode]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for n in range(start, start + count):
        tenant = "big" if n % 20 == 0 else f"t{n % _TENANTS}"
        out.append(
            Episode(
                id=f"e{n}",
                tenant=tenant,
                thread=f"th{rng.randrange(_THREADS)}",
                agent=f"a{n % 3}",
                text=lines[n % len(lines)],
                created_at=base + timedelta(seconds=n),
                importance=rng.random(),
            )
        )
    return out


def _recalls(store: SyncEpisodeStore, scopes: list[RecallScope], queries: list[str]) -> list[float]:
    times = []
    for scope, query in zip(scopes, queries, strict=True):
        t0 = time.perf_counter()
        store.recall(query, scope=scope, k=10)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _measure(store: SyncEpisodeStore, embedder: BankEmbedder, lines: list[str], rng: random.Random) -> dict[str, Any]:
    queries = [f"recall: {rng.choice(lines)}" for _ in range(_RECALLS)]
    scopes = [RecallScope(tenant=f"t{rng.randrange(_TENANTS)}") for _ in range(_RECALLS)]
    embedder.real_queries = True
    full = _recalls(store, scopes, queries)
    embedder.real_queries = False
    fresh = [RecallScope(tenant=f"t{rng.randrange(_TENANTS)}") for _ in range(_RECALLS)]
    alone = _recalls(store, fresh, queries)
    big = RecallScope(tenant="big")
    t0 = time.perf_counter()
    store.recall("recall: cold load", scope=big, k=10)
    big_cold = (time.perf_counter() - t0) * 1000
    big_warm = _recalls(store, [big] * 20, queries[:20])
    return {
        "recall_p50_ms": round(percentile(full, 50), 2),
        "recall_p99_ms": round(percentile(full, 99), 2),
        "recall_store_p50_ms": round(percentile(alone, 50), 2),
        "recall_store_p99_ms": round(percentile(alone, 99), 2),
        "scope_episodes": store.count(scopes[0]),
        "big_scope_episodes": store.count(big),
        "big_scope_cold_ms": round(big_cold, 1),
        "big_scope_warm_p50_ms": round(percentile(big_warm, 50), 2),
        "big_scope_warm_p99_ms": round(percentile(big_warm, 99), 2),
    }


def _plan(store: SyncEpisodeStore, query: ClauseElement) -> list[str]:
    """The database's plan for ``query``, one line per step."""
    sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as connection:
        rows = connection.execute(text(explain + sql)).all()
    return [str(row[-1]) for row in rows]


def scope_plans(store: SyncEpisodeStore) -> dict[str, Any]:
    """Plans of the two queries a cold recall runs for one tenant: its version (count, newest) and its rows."""
    scope = RecallScope(tenant="t7")
    plans = {"version": _plan(store, _version_query(scope)), "load": _plan(store, _load_query(scope))}
    steps = " ".join(line for lines in plans.values() for line in lines)
    full_scan = "SCAN episodes" in steps or "Seq Scan" in steps
    return {**plans, "tenant_index_used": "ix_episodes_tenant" in steps and not full_scan}


def run_backend(url: str, target: int, budget_s: float, embedder: BankEmbedder, lines: list[str]) -> dict[str, Any]:
    """Record up to ``target`` episodes (or for ``budget_s`` seconds), measuring at each checkpoint."""
    rng = random.Random(11)
    store = SyncEpisodeStore.open(url, embedder=embedder)
    trend: list[dict[str, Any]] = []
    recorded, spent = 0, 0.0
    try:
        checkpoints = [c for c in _CHECKPOINTS if c < target] + [target]
        for checkpoint in checkpoints:
            s0, step_start = time.perf_counter(), recorded
            while recorded < checkpoint and spent + time.perf_counter() - s0 < budget_s:
                store.record_many(_episodes(lines, recorded, min(_BATCH, checkpoint - recorded), rng))
                recorded = min(recorded + _BATCH, checkpoint)
            step_s = time.perf_counter() - s0
            spent += step_s
            point = {"episodes": recorded, "record_per_s": round((recorded - step_start) / step_s, 1)}
            point.update(_measure(store, embedder, lines, rng))
            trend.append(point)
            print(f"  {point}", flush=True)
            if recorded < checkpoint:
                break
        plans = scope_plans(store)
        print(f"  plans: {plans}", flush=True)
    finally:
        store.close()
    last = trend[-1]
    return {
        **last,
        "record_per_s": round(recorded / spent, 1),
        "trend": trend,
        "record_budget_s": budget_s,
        "plans": plans,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def redaction_baseline(lines: list[str]) -> dict[str, float]:
    """Secret redaction of one 500-episode batch: episode by episode (before) against one batch scan (now)."""
    batch = _episodes(lines, 0, 500, random.Random(1))
    t0 = time.perf_counter()
    for episode in batch:
        _redacted(episode)
    each = len(batch) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    _redacted_batch(batch)
    whole = len(batch) / (time.perf_counter() - t0)
    return {"per_episode_per_s": round(each, 1), "batched_per_s": round(whole, 1), "speedup": round(whole / each, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--budget-s", type=float, default=900.0, help="recording time per backend")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    lines = real_lines()
    centres = get_embedder().embed(random.Random(3).sample(lines, 300))
    embedder = BankEmbedder(np.asarray(centres, dtype=np.float32), np.random.default_rng(5))
    print(f"{len(lines)} real lines; vectors: 300 real MiniLM centres, {_BANK} clustered synthetic")
    results: dict[str, Any] = {"redaction": redaction_baseline(lines)}
    print(f"redaction: {results['redaction']}")
    if "sqlite" in args.backends:
        with tempfile.TemporaryDirectory(prefix="memory-scale-") as folder:
            print("sqlite:")
            url = f"sqlite:///{folder}/episodes.db"
            results["sqlite"] = run_backend(url, args.episodes, args.budget_s, embedder, lines)
            results["sqlite"]["disk_mb"] = round(Path(folder, "episodes.db").stat().st_size / 2**20, 1)
    if "postgres" in args.backends:
        try:
            with postgres_cluster(fast=False) as url:
                print("postgres:")
                results["postgres"] = run_backend(url, args.episodes, args.budget_s, embedder, lines)
        except PostgresUnavailable as e:
            results["postgres"] = {"skipped": str(e)}
    results["vectors"] = "synthetic clustered (300 real MiniLM centres + N(0,0.045)); queries real MiniLM"
    results["layout"] = f"{_TENANTS} tenants x {_THREADS} threads (95%), one 'big' tenant (5%)"
    print(f"wrote {write('memory_scale', results)}")


if __name__ == "__main__":
    main()
