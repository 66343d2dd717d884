"""Pool overhead: what ``PoolModel`` adds on top of calling a member directly.

Two figures:

- the routing decision alone (route key + availability filter + policy choice + bookkeeping),
  in process, over a 3-member pool with no network: printed, p50/p99 in µs;
- the pool's added latency on a real 1-token completion: for each pair, the same request goes
  once straight to a real ``llama_cpp.server`` member (``OpenAICompatModel``) and once through a
  ``PoolModel`` over that member (order alternating), and the difference is the overhead.
  Written to ``results/pool_overhead.json`` as ``p50_us``/``p99_us`` (of the per-pair difference)
  and ``direct_p50_us`` (the direct call's p50, the baseline).

    python benchmarks/pool_overhead.py [--pairs 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import anyio
from _common import percentile, write

from mcphive.inference.base import ChatMessage, ChatRequest
from mcphive.inference.openai_compat import OpenAICompatModel
from mcphive.inference.pool import PoolLauncher, PoolModel

REQUEST = ChatRequest(messages=[ChatMessage(role="user", content="Say yes.")], max_tokens=1)


async def routing_decision(iterations: int) -> list[float]:
    """Microseconds per routing decision inside PoolModel (no request is sent)."""
    urls = [f"http://127.0.0.1:{9 + i}/v1" for i in range(3)]
    pool = PoolModel(urls, "smollm2", policy="prefix_aware")
    history = [ChatMessage(role="system", content="You are a careful assistant. " * 60), *REQUEST.messages]
    request = ChatRequest(messages=history, max_tokens=1)
    times: list[float] = []
    try:
        for _ in range(iterations):
            start = time.perf_counter_ns()
            key = pool.route_key(request)
            member = await pool._acquire(key, set())
            assert member is not None
            pool._release(member)
            times.append((time.perf_counter_ns() - start) / 1000)
    finally:
        await pool.aclose()
    return times


async def added_latency(url: str, pairs: int) -> tuple[list[float], list[float]]:
    """Per pair: (pool - direct) and direct, in µs."""
    direct = OpenAICompatModel(url, "smollm2")
    overheads: list[float] = []
    directs: list[float] = []
    async with PoolModel([url], "smollm2") as pool:
        for _ in range(5):  # warm both connection pools and the server's prompt cache
            await direct.chat(REQUEST)
            await pool.chat(REQUEST)
        for i in range(pairs):
            timings = {}
            for name in ("direct", "pool") if i % 2 else ("pool", "direct"):
                model = direct if name == "direct" else pool
                start = time.perf_counter_ns()
                await model.chat(REQUEST)
                timings[name] = (time.perf_counter_ns() - start) / 1000
            overheads.append(timings["pool"] - timings["direct"])
            directs.append(timings["direct"])
    await direct.aclose()
    return overheads, directs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=20000)
    args = parser.parse_args()
    decisions = anyio.run(routing_decision, args.decisions)
    with PoolLauncher(1) as launcher:
        overheads, directs = anyio.run(added_latency, launcher.urls[0], args.pairs)
    result = {
        "p50_us": round(percentile(overheads, 50), 1),
        "p99_us": round(percentile(overheads, 99), 1),
        "direct_p50_us": round(percentile(directs, 50), 1),
    }
    print(f"{'measure':<40}{'p50 µs':>12}{'p99 µs':>12}")
    print(f"{'routing decision (in process)':<40}{percentile(decisions, 50):>12.1f}{percentile(decisions, 99):>12.1f}")
    print(f"{'pool added latency (pool - direct)':<40}{result['p50_us']:>12.1f}{result['p99_us']:>12.1f}")
    print(f"{'direct 1-token completion':<40}{result['direct_p50_us']:>12.1f}{percentile(directs, 99):>12.1f}")
    print(f"wrote {write('pool_overhead', result)}")


if __name__ == "__main__":
    main()
