"""MCP tool-call latency: mcphive's server stack against a bare ``MCPServer``, per transport.

The same trivial ``echo`` tool, called through ``mcp.Client`` (2026-era, ``mode="auto"``):

- ``in_process``: the client holds the server object;
- ``stdio``: ``benchmarks/_echo_server.py`` launched as a subprocess (``run_stdio_async``);
- ``http``: mcphive = ``build_http_app`` (policy: bearer token, scopes, Origin, size and rate limits,
  destructive-call peek) under uvicorn; bare = ``MCPServer.streamable_http_app()`` under uvicorn.

The mcphive variant is the server built the way mcphive builds its servers (annotations, structured
output, ``tool_errors``). Both variants run in the same process, alternating in small batches so
that noise on the shared machine hits both alike. Target: mcphive within 1.2x of bare on each.

    python benchmarks/mcp_latency.py [--calls 400]
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import anyio
import httpx2
import uvicorn
from _common import percentile, write
from _echo_server import build_bare, build_mcphive
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcphive.mcp_servers.http import serve_http
from mcphive.policy import PolicyConfig, RateLimit, TokenSpec

ECHO_SERVER = Path(__file__).parent / "_echo_server.py"
TOKEN = "bench-token"
BATCH = 20

Opener = Callable[[], AbstractAsyncContextManager[Client]]


async def _timed_calls(client: Client, n: int, out: list[float]) -> None:
    for i in range(n):
        start = time.perf_counter()
        result = await client.call_tool("echo", {"text": f"ping {i}"})
        out.append((time.perf_counter() - start) * 1000)
        if result.is_error:
            raise RuntimeError(f"echo failed: {result}")


async def compare(mcphive: Opener, bare: Opener, calls: int) -> dict[str, float]:
    """p50/p99 of ``calls`` echo calls through each client, alternating batches."""
    times: dict[str, list[float]] = {"mcphive": [], "bare": []}
    async with mcphive() as ours, bare() as theirs:
        clients = {"mcphive": ours, "bare": theirs}
        for client in clients.values():
            await _timed_calls(client, 30, [])  # warm-up
        for _ in range(calls // BATCH):
            for name, client in clients.items():
                await _timed_calls(client, BATCH, times[name])
    ours_p50, bare_p50 = percentile(times["mcphive"], 50), percentile(times["bare"], 50)
    return {
        "mcphive_p50_ms": round(ours_p50, 3),
        "bare_p50_ms": round(bare_p50, 3),
        "ratio": round(ours_p50 / bare_p50, 3),
        "mcphive_p99_ms": round(percentile(times["mcphive"], 99), 3),
        "bare_p99_ms": round(percentile(times["bare"], 99), 3),
    }


def _stdio(variant: str) -> Opener:
    params = StdioServerParameters(command=sys.executable, args=[str(ECHO_SERVER), variant])
    return lambda: Client(params)


@asynccontextmanager
async def _http_client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


@asynccontextmanager
async def _serve_mcphive() -> AsyncIterator[str]:
    token = TokenSpec.model_validate({"name": "bench", "token": TOKEN, "scopes": ["echo"]})
    # A generous rate limit: the benchmark measures the policy's cost, not its refusals.
    policy = PolicyConfig(tokens=[token], require_auth=True, rate_limit=RateLimit(per_second=1e6, burst=1_000_000))
    ready = anyio.Event()
    ports: list[int] = []

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(serve_http, {"echo": build_mcphive()}, policy, ready=on_ready))
        await ready.wait()
        yield f"http://127.0.0.1:{ports[0]}/mcp/echo"
        tg.cancel_scope.cancel()


@asynccontextmanager
async def _serve_bare() -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(build_bare().streamable_http_app(), log_config=None, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        # The socket already listens: early connections wait in its backlog until uvicorn has started.
        tg.start_soon(partial(server.serve, sockets=[sock]))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        server.should_exit = True
    sock.close()


async def _http(calls: int) -> dict[str, float]:
    async with _serve_mcphive() as ours, _serve_bare() as theirs:
        return await compare(
            lambda: _http_client(ours, {"authorization": f"Bearer {TOKEN}"}),
            lambda: _http_client(theirs, {}),
            calls,
        )


async def main(calls: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["in_process"] = await compare(lambda: Client(build_mcphive()), lambda: Client(build_bare()), calls)
    results["stdio"] = await compare(_stdio("mcphive"), _stdio("bare"), calls)
    results["http"] = await _http(calls)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="timed calls per variant and transport")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    figures = anyio.run(main, args.calls)
    print(f"{'transport':<11} {'mcphive p50':>12} {'bare p50':>10} {'ratio':>6} {'mcphive p99':>12} {'bare p99':>10}")
    for transport, row in figures.items():
        print(
            f"{transport:<11} {row['mcphive_p50_ms']:>10.3f}ms {row['bare_p50_ms']:>8.3f}ms {row['ratio']:>6.2f} "
            f"{row['mcphive_p99_ms']:>10.3f}ms {row['bare_p99_ms']:>8.3f}ms"
        )
    path = write(
        "mcp_latency",
        {**figures, "parameters": {"calls": args.calls, "batch": BATCH, "client_mode": "auto", "target_ratio": 1.2}},
    )
    print(f"wrote {path}")
