"""Pool overhead: what the pool adds on top of calling a member directly.

Two figures, measured in one run:

(a) **The routing decision** inside ``PoolModel`` (route key + availability filter + policy choice +
    bookkeeping), in process over a 3-member ``prefix_aware`` pool with no network: p50/p99 in µs.

(b) **The HTTP front's added latency.** One real ``llama_cpp.server`` member (``PoolLauncher(1)``) and
    the real front over it (``mcphive pool serve`` as a subprocess on loopback, as it is deployed).
    The same streamed 1-token chat completion goes alternately straight to the member and through the
    front (the order alternates from pair to pair), ``--pairs`` times after a warm-up, from one shared
    ``httpx2`` client. The front's rate limit is raised for the run (it still checks every request).
    Per request two times are taken:

    - **TTFT**, time to the first token: until the first server-sent event carrying content. Not the
      first byte: a front may send its headers before it has asked the member (this one did until
      they moved to its first event), and its first byte would then hide the hop.
    - **total**: until the end of the body (past ``[DONE]``), which is what ``p50_us``/``p99_us`` use:
      it includes the front's work after the member's last event.

    The front's added latency at a percentile is the difference of the two paths' percentiles
    (``p50_front - p50_direct``, ``p99_front - p99_direct``). Both paths share the same member, whose
    own time (several ms here) varies far more than the hop; the percentile of per-pair differences mixes two
    independent draws of that jitter, so its p99 measures mostly the member's tail, not the front. The
    difference of percentiles compares the two distributions at the same rank, where the member's
    jitter cancels. The per-pair difference percentiles are reported too, for transparency.

Results (``results/pool_overhead.json``):

- ``p50_us`` = routing decision p50 + the front's added total latency at p50
  (``total_p50_front - total_p50_direct``); ``p99_us`` likewise at p99. The target is ``p99_us`` <= 1000.
- ``direct_p50_us``: the direct 1-token completion's total p50 (the baseline).
- ``detail``: both paths' TTFT and total p50/p99, the front's added TTFT, the per-pair differences,
  the routing decision alone, the front process's CPU time per request (user + system, from ``/proc``;
  it includes its background health checks, a few ms a second at most), the pair count and the
  machine's load average before and after.

    python benchmarks/pool_overhead.py [--pairs 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import anyio
import httpx2
from _common import percentile, write

from mcphive.inference.base import ChatMessage, ChatRequest
from mcphive.inference.pool import PoolLauncher, PoolModel

PROMPT = "Say yes."
# What the front sends the member for a streamed request: the direct path asks for the same work.
MEMBER_BODY = {
    "model": "smollm2",
    "messages": [{"role": "user", "content": PROMPT}],
    "max_tokens": 1,
    "temperature": 0.0,
    "stream": True,
    "stream_options": {"include_usage": True},
}
FRONT_BODY = {k: v for k, v in MEMBER_BODY.items() if k != "stream_options"}


async def routing_decision(iterations: int) -> list[float]:
    """Microseconds per routing decision inside PoolModel (no request is sent)."""
    urls = [f"http://127.0.0.1:{9 + i}/v1" for i in range(3)]
    pool = PoolModel(urls, "smollm2", policy="prefix_aware")
    history = [
        ChatMessage(role="system", content="You are a careful assistant. " * 60),
        ChatMessage(role="user", content=PROMPT),
    ]
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def front(member_url: str) -> Iterator[tuple[str, int]]:
    """``mcphive pool serve`` over ``member_url`` on a free loopback port; yields its ``/v1`` root and pid."""
    port = _free_port()
    # The rate limiter still checks every request; its bucket is just large enough for the benchmark.
    policy = {"rate_limit": {"per_second": 1e6, "burst": 1_000_000}}
    env = os.environ | {
        "MCPHIVE_POOL_MEMBERS": json.dumps([member_url]),
        "MCPHIVE_POOL_MODEL": "smollm2",
        "MCPHIVE_POLICY": json.dumps(policy),
    }
    argv = [str(Path(sys.executable).with_name("mcphive")), "pool", "serve", "--http", f"127.0.0.1:{port}"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        with httpx2.Client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"pool serve exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                with contextlib.suppress(httpx2.TransportError):
                    if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("pool serve did not become healthy within 60 s")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _timed_stream(client: httpx2.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, float]:
    """(TTFT, total) in µs of one streamed completion, read to its end as OpenAI's clients do.

    Reading past ``[DONE]`` to the end of the body lets the connection go back to the client's pool.
    """
    start = time.perf_counter_ns()
    first = 0
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if not first and payload != "[DONE]":
                choices = json.loads(payload).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    first = time.perf_counter_ns()
    end = time.perf_counter_ns()
    if not first:
        raise RuntimeError(f"{url} streamed no content")
    return (first - start) / 1000, (end - start) / 1000


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def added_latency(
    member_url: str, front_url: str, front_pid: int, pairs: int, warmup: int
) -> tuple[dict[str, dict[str, list[float]]], float | None]:
    """TTFT and total of each path in µs, one entry per pair; and the front's CPU µs per request."""
    paths = {"direct": (member_url, MEMBER_BODY), "front": (front_url, FRONT_BODY)}
    times: dict[str, dict[str, list[float]]] = {name: {"ttft": [], "total": []} for name in paths}
    async with httpx2.AsyncClient(timeout=60) as client:
        for _ in range(warmup):  # connections, the member's prompt cache, the front's first-request costs
            for url, body in paths.values():
                await _timed_stream(client, url, body)
        cpu_before = cpu_seconds(front_pid)
        for i in range(pairs):
            for name in ("direct", "front") if i % 2 else ("front", "direct"):
                ttft, total = await _timed_stream(client, *paths[name])
                times[name]["ttft"].append(ttft)
                times[name]["total"].append(total)
        cpu_after = cpu_seconds(front_pid)
    cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / pairs * 1e6
    return times, cpu


def _p(values: list[float], q: float) -> float:
    return round(percentile(values, q), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)  # p99 from 400 pairs rested on 4 samples
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=20000)
    args = parser.parse_args()
    load_before = os.getloadavg()
    decisions = anyio.run(routing_decision, args.decisions)
    with PoolLauncher(1) as launcher, front(launcher.urls[0]) as (front_url, front_pid):
        times, front_cpu = anyio.run(added_latency, launcher.urls[0], front_url, front_pid, args.pairs, args.warmup)
    load_after = os.getloadavg()

    direct, via = times["direct"], times["front"]
    detail: dict[str, Any] = {"pairs": args.pairs, "warmup_pairs": args.warmup}
    detail["routing_decision_us"] = {"p50": _p(decisions, 50), "p99": _p(decisions, 99)}
    for metric in ("ttft", "total"):
        for name, path in (("direct", direct), ("front", via)):
            detail[f"{name}_{metric}_us"] = {"p50": _p(path[metric], 50), "p99": _p(path[metric], 99)}
        detail[f"front_added_{metric}_us"] = {
            q: round(detail[f"front_{metric}_us"][q] - detail[f"direct_{metric}_us"][q], 1) for q in ("p50", "p99")
        }
        pairwise = [f - d for f, d in zip(via[metric], direct[metric], strict=True)]
        detail[f"pairwise_diff_{metric}_us"] = {"p50": _p(pairwise, 50), "p99": _p(pairwise, 99)}
    detail["front_cpu_us_per_request"] = None if front_cpu is None else round(front_cpu, 1)
    detail["load_average_before"] = [round(x, 2) for x in load_before]
    detail["load_average_after"] = [round(x, 2) for x in load_after]
    result = {
        "p50_us": round(detail["routing_decision_us"]["p50"] + detail["front_added_total_us"]["p50"], 1),
        "p99_us": round(detail["routing_decision_us"]["p99"] + detail["front_added_total_us"]["p99"], 1),
        "direct_p50_us": detail["direct_total_us"]["p50"],
        "detail": detail,
    }

    print(f"{'measure (µs)':<44}{'p50':>10}{'p99':>10}")
    rows = [
        ("(a) routing decision, in process", "routing_decision_us"),
        ("direct to the member: TTFT", "direct_ttft_us"),
        ("through the front: TTFT", "front_ttft_us"),
        ("direct to the member: total", "direct_total_us"),
        ("through the front: total", "front_total_us"),
        ("front added TTFT (difference of pcts)", "front_added_ttft_us"),
        ("(b) front added total (difference of pcts)", "front_added_total_us"),
        ("per-pair difference, TTFT", "pairwise_diff_ttft_us"),
        ("per-pair difference, total", "pairwise_diff_total_us"),
    ]
    for label, key in rows:
        print(f"{label:<44}{detail[key]['p50']:>10.1f}{detail[key]['p99']:>10.1f}")
    print(f"{'(a) + (b)':<44}{result['p50_us']:>10.1f}{result['p99_us']:>10.1f}")
    print(f"the front's CPU time per request: {detail['front_cpu_us_per_request']} µs")
    print(f"load average before {detail['load_average_before']}, after {detail['load_average_after']}")
    print(f"wrote {write('pool_overhead', result)}")


if __name__ == "__main__":
    main()
