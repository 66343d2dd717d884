"""Pool failover under load: one of two real llama.cpp members is killed mid-run, then restarted.

Workers stream completions through ``PoolModel`` without pause. After a warm phase, member 1 is
killed (SIGKILL, as a crash); after an outage phase it is restarted on its old port. Counted:

- ``failed_prestream``: requests that failed before their first chunk: must be 0, the pool retries
  them on the surviving member;
- ``failed_midstream``: streams cut by the kill (cannot be retried: text already reached the caller);
- ``detect_s``: from the kill until the pool opened the member's breaker;
- ``rejoin_s``: from the restarted member answering ``/v1/models`` until the pool sent it a request again
  (``breaker_closed_s``: until its breaker closed; ``restart_s``: the process restart itself).

The baseline, measured in the same run, is the throughput with both members; the outage's
throughput is reported as a ratio to it.

    python benchmarks/pool_failover.py [--workers 4] [--phase 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import anyio
import anyio.to_thread
from _common import write

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatRequest
from mcphive.inference.pool import PoolLauncher, PoolModel


@dataclass
class Tally:
    """What the workers saw, with the finish time of every successful request."""

    done: list[float] = field(default_factory=list)
    failed_prestream: int = 0
    failed_midstream: int = 0
    running: bool = True


async def worker(pool: PoolModel, tally: Tally, number: int) -> None:
    """Stream requests back to back until told to stop."""
    i = 0
    while tally.running:
        i += 1
        text = f"Worker {number}, request {i}: name a colour."
        request = ChatRequest(messages=[ChatMessage(role="user", content=text)], max_tokens=24)
        started = False
        try:
            async for _chunk in pool.stream(request):
                started = True
        except ModelUnavailable:
            if started:
                tally.failed_midstream += 1
            else:
                tally.failed_prestream += 1
            continue
        tally.done.append(time.monotonic())


async def wait_until(condition: object, seconds: float = 60.0) -> float:
    """Poll ``condition`` every 10 ms; the monotonic time it first held."""
    with anyio.fail_after(seconds):
        # The pool's monitor changes member states in the background and signals nothing to await.
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await anyio.sleep(0.01)
    return time.monotonic()


def rate(done: list[float], start: float, end: float) -> float:
    """Completed requests per second in ``[start, end)``."""
    return sum(start <= t < end for t in done) / (end - start)


async def run(launcher: PoolLauncher, workers: int, phase: float) -> dict[str, float | int | str]:
    """The warm, outage and recovery phases; the results."""
    pool = PoolModel(
        launcher.urls,
        "smollm2",
        policy="round_robin",
        poll_interval=0.2,
        health_interval=0.5,
        breaker_threshold=2,
        breaker_cooldown=1.0,
        timeout=30.0,
    )
    tally = Tally()
    async with pool, anyio.create_task_group() as group:
        victim = pool.members[1]
        for number in range(workers):
            group.start_soon(worker, pool, tally, number)
        warm_start = time.monotonic()
        await anyio.sleep(phase)
        killed_at = time.monotonic()
        await anyio.to_thread.run_sync(launcher.kill, 1)
        detected_at = await wait_until(lambda: victim.breaker.state != "closed")
        await anyio.sleep(max(0.0, killed_at + phase - time.monotonic()))
        outage_end = time.monotonic()
        await anyio.to_thread.run_sync(launcher.restart, 1)
        ready_at, served_before = time.monotonic(), victim.served
        closed_at = await wait_until(lambda: victim.breaker.state == "closed")
        rejoined_at = await wait_until(lambda: victim.in_flight > 0 or victim.served > served_before)
        await anyio.sleep(phase / 2)
        tally.running = False
    baseline = rate(tally.done, warm_start + 2.0, killed_at)  # the first seconds warm the prompt caches
    outage = rate(tally.done, detected_at, outage_end)
    return {
        "requests": len(tally.done) + tally.failed_prestream + tally.failed_midstream,
        "failed_prestream": tally.failed_prestream,
        "failed_midstream": tally.failed_midstream,
        "detect_s": round(detected_at - killed_at, 3),
        "rejoin_s": round(rejoined_at - ready_at, 3),
        "breaker_closed_s": round(closed_at - ready_at, 3),
        "restart_s": round(ready_at - outage_end, 3),
        "baseline_rps": round(baseline, 2),
        "outage_rps": round(outage, 2),
        "outage_throughput_ratio": round(outage / baseline, 3) if baseline else 0.0,
        "victim_failures": victim.failed,
        "victim_last_error": victim.last_error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="concurrent streaming clients")
    parser.add_argument("--phase", type=float, default=20.0, help="seconds of the warm and outage phases")
    args = parser.parse_args()
    with PoolLauncher(2, n_ctx=1024) as launcher:
        results = anyio.run(run, launcher, args.workers, args.phase)
    for key, value in results.items():
        print(f"{key:<24} {value}")
    path = write("pool_failover", {**results, "workers": args.workers, "phase_s": args.phase})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
