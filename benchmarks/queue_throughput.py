"""Durable queue throughput: enqueue -> claim -> complete per second, SQLite and PostgreSQL, 1/2/4 worker processes.

For each backend, worker count and mode, a fresh database gets ``--tasks`` tasks (the four
priority classes in turn), then the worker processes (started and waiting on a barrier, so
interpreter start-up is not timed) drain it: claim, complete, until the queue is empty.

- unbatched: ``put`` one task per transaction, ``claim`` one, ``complete`` one;
- batched: ``put_many``, ``claim_many`` and ``complete_many`` of ``--batch`` tasks.

tasks/s = tasks / (enqueue time + drain time). The headline figures (``sqlite`` / ``postgres`` ->
worker count -> tasks/s) are the batched runs; ``unbatched`` and ``runs`` hold the rest. Fair share
(the default) is on; ``tenants`` repeats the PostgreSQL 4-worker runs with the tasks spread over
``--tenants`` tenants, fair share on and off, and ``previous`` keeps the figures of the results
file this run replaces. Every worker writes the ids it claimed; the
``double_claims`` figure counts ids claimed more than once (plus tasks never claimed as ``lost``),
and the database must hold every task as done. PostgreSQL is a private cluster started here
with fsync on and ``synchronous_commit=off`` (like SQLite's ``synchronous=NORMAL`` in WAL mode:
never corrupt, a power loss may drop the last commits); SQLite runs with the store's own pragmas.
Baseline in the same run: the in-process :class:`~mcphive.router.prioritizer.Prioritizer` doing
the same put/claim/complete.

    python benchmarks/queue_throughput.py [--tasks 10000] [--batch 100] [--backends sqlite,postgres] [--tenants 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import sqlalchemy as sa
from _common import RESULTS, write
from _pg import postgres_cluster

from mcphive.router.prioritizer import Prioritizer
from mcphive.router.queue_sql import SyncDurableQueue
from mcphive.types import Principal, Priority, Task

_CLASSES = (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW)


def _tasks(n: int, tenants: int = 1) -> list[Task]:
    return [
        Task(text=f"task {i}", workspace=".", priority=_CLASSES[i % 4], principal=Principal(tenant=f"t{i % tenants}"))
        for i in range(n)
    ]


def _worker(url: str, worker: str, batch: int, out: str, barrier: Any, fair_share: bool) -> None:
    queue = SyncDurableQueue.open(url, max_size=1_000_000, fair_share=fair_share)
    claimed: list[str] = []
    barrier.wait(timeout=120)
    start = time.perf_counter()
    while True:
        if batch > 1:
            ids = [lease.task.id for lease in queue.claim_many(worker, batch)]
            if not ids:
                break
            queue.complete_many(ids, worker)
        else:
            lease = queue.claim(worker)
            if lease is None:
                break
            ids = [lease.task.id]
            queue.complete(lease.task.id, worker)
        claimed += ids
    end = time.perf_counter()
    queue.close()
    Path(out).write_text(f"{start} {end}\n" + "\n".join(claimed))


def _enqueue(url: str, tasks: list[Task], batch: int) -> float:
    # Turns are given at put whether or not claims use them, so enqueue does not depend on fair_share.
    queue = SyncDurableQueue.open(url, max_size=1_000_000)
    start = time.perf_counter()
    if batch > 1:
        for i in range(0, len(tasks), batch):
            queue.put_many(tasks[i : i + batch])
    else:
        for task in tasks:
            queue.put(task)
    elapsed = time.perf_counter() - start
    queue.close()
    return elapsed


def _drain(url: str, workers: int, batch: int, folder: Path, fair_share: bool) -> tuple[float, list[str]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    outs = [folder / f"w{i}.txt" for i in range(workers)]
    procs = [
        context.Process(target=_worker, args=(url, f"w{i}", batch, str(outs[i]), barrier, fair_share))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    for proc in procs:
        proc.join()
    if any(proc.exitcode != 0 for proc in procs):
        raise RuntimeError(f"a worker failed: exit codes {[proc.exitcode for proc in procs]}")
    spans, claimed = [], []
    for out in outs:
        first, *ids = out.read_text().splitlines()
        spans.append(tuple(float(x) for x in first.split()))
        claimed += ids
    return max(end for _, end in spans) - min(start for start, _ in spans), claimed


def _done_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(sa.text("SELECT count(*) FROM task_queue WHERE state = 'done'")) or 0)
    finally:
        engine.dispose()


def _run_one(
    url: str, n: int, workers: int, batch: int, folder: Path, *, tenants: int = 1, fair_share: bool = True
) -> dict[str, Any]:
    tasks = _tasks(n, tenants)
    enqueue_s = _enqueue(url, tasks, batch)
    drain_s, claimed = _drain(url, workers, batch, folder, fair_share)
    counts = Counter(claimed)
    return {
        "tasks_per_s": round(n / (enqueue_s + drain_s), 1),
        "enqueue_per_s": round(n / enqueue_s, 1),
        "claim_complete_per_s": round(n / drain_s, 1),
        "double_claims": sum(c - 1 for c in counts.values() if c > 1),
        "lost": len({t.id for t in tasks} - set(counts)),
        "done_in_db": _done_count(url),
    }


def _baseline(n: int) -> float:
    queue = Prioritizer(max_size=n)
    tasks = _tasks(n)
    start = time.perf_counter()
    for task in tasks:
        queue.put(task)
    while (claimed := queue.claim_nowait()) is not None:
        queue.complete(claimed.id)
    return n / (time.perf_counter() - start)


def _database(backend: str, folder: Path, server: str | None, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / name}.db"
    assert server is not None
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return sa.make_url(server).set(database=name).render_as_string(hide_password=False)


def _backend(backend: str, args: argparse.Namespace, folder: Path, server: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for workers in (1, 2, 4):
        row: dict[str, Any] = {}
        for mode, batch in (("unbatched", 1), ("batched", args.batch)):
            run_dir = folder / f"{backend}-{workers}-{mode}"
            run_dir.mkdir()
            url = _database(backend, run_dir, server, f"q_{workers}_{mode}")
            row[mode] = _run_one(url, args.tasks, workers, batch, run_dir)
            print(f"{backend:8} {workers} workers {mode:9}: {row[mode]}", flush=True)
        results[str(workers)] = row
    return results


def _tenants(args: argparse.Namespace, folder: Path, server: str) -> dict[str, Any]:
    """PostgreSQL, 4 workers, the tasks spread over ``--tenants`` tenants: fair share on and off."""
    results: dict[str, Any] = {"tenants": args.tenants, "workers": 4}
    for fair_share in (True, False):
        for mode, batch in (("unbatched", 1), ("batched", args.batch)):
            name = f"fair_{'on' if fair_share else 'off'}_{mode}"
            run_dir = folder / f"tenants-{name}"
            run_dir.mkdir()
            url = _database("postgres", run_dir, server, f"q_tenants_{name}")
            results[name] = _run_one(url, args.tasks, 4, batch, run_dir, tenants=args.tenants, fair_share=fair_share)
            print(f"postgres {args.tenants} tenants {name:22}: {results[name]}", flush=True)
    return results


def _previous() -> dict[str, Any] | None:
    """The headline figures of the results file this run replaces, if there is one."""
    path = RESULTS / "queue_throughput.json"
    if not path.exists():
        return None
    old = json.loads(path.read_text())

    def headline(value: Any) -> float:
        # Older files nested both modes under each worker count.
        return float(value["batched"]["tasks_per_s"] if isinstance(value, dict) else value)

    previous: dict[str, Any] = {"when": old.get("machine", {}).get("when")}
    for backend in ("sqlite", "postgres"):
        if backend in old:
            previous[backend] = {workers: headline(value) for workers, value in old[backend].items()}
            unbatched = old.get("unbatched", {}).get(backend) or {
                workers: value["unbatched"]["tasks_per_s"] for workers, value in old[backend].items()
            }
            previous.setdefault("unbatched", {})[backend] = unbatched
    return previous


def main() -> None:
    """Run every configuration, print each line, write results/queue_throughput.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--tenants", type=int, default=8, help="tenants of the fair-share comparison (0: skip it)")
    args = parser.parse_args()
    previous = _previous()
    baseline = _baseline(args.tasks)
    print(f"baseline in-process Prioritizer: {baseline:,.0f} tasks/s")
    data: dict[str, Any] = {
        "tasks": args.tasks,
        "batch_size": args.batch,
        "baseline_in_process_per_s": round(baseline),
        "postgres_settings": {"fsync": "on", "synchronous_commit": "off"},
        "fair_share": True,
    }
    runs_by_backend: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="queue-bench-") as tmp:
        for backend in args.backends.split(","):
            if backend == "postgres":
                # fsync stays on (crash-safe); commits are not flushed one by one, the same trade-off
                # as the SQLite engine's synchronous=NORMAL: a power loss may drop the last commits.
                with postgres_cluster(fast=False, settings={"synchronous_commit": "off"}) as server:
                    runs_by_backend[backend] = _backend(backend, args, Path(tmp), server)
                    if args.tenants > 0:
                        data["tenants"] = _tenants(args, Path(tmp), server)
            else:
                runs_by_backend[backend] = _backend(backend, args, Path(tmp), None)
    runs = [run for rows in runs_by_backend.values() for row in rows.values() for run in row.values()]
    runs += [run for name, run in data.get("tenants", {}).items() if name.startswith("fair_")]
    for run in runs:
        run["ratio_to_in_process"] = round(run["tasks_per_s"] / baseline, 5)
    for backend, rows in runs_by_backend.items():
        data[backend] = {workers: row["batched"]["tasks_per_s"] for workers, row in rows.items()}
        data.setdefault("unbatched", {})[backend] = {
            workers: row["unbatched"]["tasks_per_s"] for workers, row in rows.items()
        }
    data["double_claims"] = sum(run["double_claims"] for run in runs)
    data["lost"] = sum(run["lost"] for run in runs)
    data["runs"] = runs_by_backend
    if "postgres" in data:
        best = data["postgres"]["4"]
        data["target"] = {"postgres_4_workers_per_s": 2000, "measured": best, "met": best >= 2000}
    if previous is not None:
        data["previous"] = previous
    print(f"double claims: {data['double_claims']}, lost: {data['lost']}; wrote {write('queue_throughput', data)}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
