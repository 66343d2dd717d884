"""MCP over HTTP under load: 50 concurrent clients for 60 s against the gateway and the state server.

A child process serves a real ``Hive`` (with a ``FunctionModel``: no model is called during the
run) through ``serve_http``: the policy front with one bearer token per client, scopes, Origin,
size and rate limits. Each client (``mcp.Client``, 2026-era, its own token) loops over cheap
tools: ``list_agents`` and ``task_status`` on the gateway, ``state_put`` and ``state_get`` on the
state server, until the time is up or its request budget is spent. Reported: requests, errors
(target 0), p99 latency, and the server's RSS after warm-up and at the end (target: flat).

    python benchmarks/mcp_load.py [--clients 50] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import anyio
import httpx2
from _common import percentile, write
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MAX_REQUESTS_PER_CLIENT = 200_000  # a bound besides the clock, so a runaway loop cannot spin forever
WARMUP_CALLS = 4


def _token(i: int) -> str:
    return f"load-token-{i}"


async def serve(clients: int) -> None:
    """The child: open a hive, finish one task (for task_status), serve over HTTP, print the port."""
    from mcphive import Hive, Settings
    from mcphive.inference.testing import FunctionModel, final
    from mcphive.mcp_servers.gateway import build_gateway
    from mcphive.mcp_servers.http import serve_http
    from mcphive.mcp_servers.state import build_state_server
    from mcphive.policy import PolicyConfig, RateLimit, TokenSpec

    tokens = [TokenSpec.model_validate({"name": f"c{i}", "token": _token(i)}) for i in range(clients)]
    # Per-token buckets well above one client's pace: the limiter runs on every request but never refuses.
    policy = PolicyConfig(tokens=tokens, rate_limit=RateLimit(per_second=5000, burst=10_000))
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        workspace.mkdir()
        settings = Settings(data_dir=Path(tmp) / "data", workers=1)
        async with Hive.open(settings, model=FunctionModel(lambda request: final("done"))) as hive:
            result = await hive.run("say done", workspace=workspace, agent="ops")
            servers = {"gateway": build_gateway(hive), "state": build_state_server(hive.state_store)}

            def ready(port: int) -> None:
                print(json.dumps({"port": port, "task_id": result.task_id}), flush=True)

            await serve_http(servers, policy, ready=ready)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@asynccontextmanager
async def _server(clients: int) -> AsyncIterator[tuple[Process, dict[str, Any]]]:
    command = [sys.executable, __file__, "--serve", "--clients", str(clients)]
    async with await anyio.open_process(command, stderr=None) as process:
        assert process.stdout is not None
        buffered = b""
        with anyio.fail_after(300):  # opening a hive loads the embedder: slow on a busy machine
            while b"\n" not in buffered:
                buffered += await process.stdout.receive()
        try:
            yield process, json.loads(buffered.split(b"\n", 1)[0])
        finally:
            process.terminate()
            await process.wait()


@asynccontextmanager
async def _connect(url: str, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


class _Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.recording = False


async def _worker(i: int, base: str, task_id: str, deadline: anyio.Event, started: anyio.Event, tally: _Tally) -> None:
    async with _connect(f"{base}/mcp/gateway", _token(i)) as gateway, _connect(f"{base}/mcp/state", _token(i)) as state:
        calls: list[tuple[Client, str, dict[str, Any]]] = [
            (gateway, "list_agents", {}),
            (gateway, "task_status", {"task_id": task_id}),
            (state, "state_put", {"namespace": f"load:{i}", "key": "k", "value": {"n": i}}),
            (state, "state_get", {"namespace": f"load:{i}", "key": "k"}),
        ]
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if deadline.is_set():
                return
            client, tool, arguments = calls[n % len(calls)]
            begun = time.perf_counter()
            try:
                failed = (await client.call_tool(tool, arguments)).is_error
            except Exception:  # any failure is an error to count, not a reason to stop the run
                logging.exception("call %s failed", tool)
                failed = True
            if tally.recording:
                tally.latencies.append((time.perf_counter() - begun) * 1000)
                tally.errors += failed
            elif n + 1 == WARMUP_CALLS:
                started.set()


async def main(clients: int, seconds: float) -> dict[str, Any]:
    async with _server(clients) as (process, info):
        base = f"http://127.0.0.1:{info['port']}"
        tally = _Tally()
        deadline = anyio.Event()
        async with anyio.create_task_group() as tg:
            warmed = [anyio.Event() for _ in range(clients)]
            for i in range(clients):
                tg.start_soon(_worker, i, base, info["task_id"], deadline, warmed[i], tally)
            with anyio.fail_after(300):
                for event in warmed:
                    await event.wait()
            rss_start = _rss_mb(process.pid)
            tally.recording = True
            begun = time.perf_counter()
            await anyio.sleep(seconds)  # the measured window itself, not a wait for a condition
            tally.recording = False
            elapsed = time.perf_counter() - begun
            deadline.set()
        rss_end = _rss_mb(process.pid)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(tally.latencies),
        "errors": tally.errors,
        "p99_ms": round(percentile(tally.latencies, 99), 3),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent MCP clients, each with its own token")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the measured window")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.serve:
        anyio.run(serve, args.clients)
        sys.exit(0)
    figures = anyio.run(main, args.clients, args.seconds)
    print(f"{'clients':>7} {'seconds':>8} {'requests':>9} {'req/s':>7} {'errors':>6} {'p99':>10} {'RSS start→end':>16}")
    print(
        f"{figures['clients']:>7} {figures['seconds']:>8.1f} {figures['requests']:>9} "
        f"{figures['requests'] / figures['seconds']:>7.1f} {figures['errors']:>6} {figures['p99_ms']:>8.1f}ms "
        f"{figures['rss_start_mb']:>7.1f}→{figures['rss_end_mb']:.1f} MB"
    )
    print(f"wrote {write('mcp_load', figures)}")
