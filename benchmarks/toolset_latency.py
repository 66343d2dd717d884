"""Per-call latency of each specialist's toolset through in-process MCP, on the example workspace.

Every read-only tool of the workspace server is called with a representative argument on a fresh
copy of the example workspace (made a git repository so the git tools have something to read):

- **through MCP**: ``mcp.Client(build_workspace_server(root))`` — the path an agent's tool call
  takes (argument validation, a worker-thread hop, structured output);
- **direct** (the baseline, same run): the tool's Python function called on the same jail.

Both include the wrapped tool's own work — for ``ruff_check``, ``bandit_scan``, ``run_pytest``,
``coverage_report``, ``dockerfile_lint``, ``workflow_audit`` and the git tools that is a child
process (start-up included), so those figures are dominated by the external tool, not by mcphive.
MCP and direct calls alternate per repetition so that load drifts on the shared machine hit both.

A toolset is an agent's own analysis tools (from its spec); ``files`` is the generic file tools
every agent shares. ``dependency_audit`` is left out (it asks a remote advisory service) and the
writing tools are left out (they change the workspace).

    python benchmarks/toolset_latency.py [--reps 10]
"""

from __future__ import annotations

import argparse
import http.server
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import anyio
from _common import percentile, write
from mcp import Client

from mcphive.agents.spec import load_specs
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import all_tools
from mcphive.mcp_servers.workspace import build_workspace_server, file_tools
from mcphive.sample import copy_sample_project

FILES = ("list_files", "read_file", "search_text")
SKIPPED = {"dependency_audit": "asks a remote advisory service"}
# Tools that start a child process (the wrapped tool's start-up is in every figure).
SUBPROCESS = {"ruff_check", "bandit_scan", "run_pytest", "coverage_report", "dockerfile_lint", "workflow_audit",
              "git_status", "git_diff"}  # fmt: skip


def _arguments(probe_url: str) -> dict[str, dict[str, Any]]:
    """The representative read-only call of the tools that do not simply analyse the whole workspace."""
    return {
        "list_files": {"pattern": "*.py"},
        "read_file": {"path": "pricefeed/client.py"},
        "search_text": {"pattern": r"def \w+"},
        "http_probe": {"url": probe_url},
        "git_status": {},
    }


def toolsets() -> dict[str, list[str]]:
    """Toolset name -> the read-only workspace tools it benchmarks."""
    readonly = {t.name for t in [*file_tools(), *all_tools()] if not t.writes} - set(SKIPPED)
    sets = {"files": list(FILES)}
    for name, spec in load_specs().items():
        sets[name] = [tool for tool in spec.tools if tool in readonly and tool not in FILES]
    return sets


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/healthz"
    finally:
        server.shutdown()
        server.server_close()


def _workspace(parent: Path) -> Path:
    root = copy_sample_project(parent / "sample_project")
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], [*identity, "commit", "-q", "-m", "sample"]):
        subprocess.run(["git", *argv], cwd=root, check=True, capture_output=True)
    (root / "pricefeed" / "pricing.py").write_text((root / "pricefeed" / "pricing.py").read_text() + "\n# edited\n")
    return root


async def _measure(root: Path, reps: int, probe_url: str) -> dict[str, dict[str, list[float]]]:
    """Per tool: MCP and direct milliseconds, ``reps`` each after one warm-up of each."""
    functions = {t.name: t.fn for t in [*file_tools(), *all_tools()]}
    specific = _arguments(probe_url)
    arguments = {tool: specific.get(tool, {"path": "."}) for tool in functions}
    jail = Jail(root)
    wanted = sorted({tool for tools in toolsets().values() for tool in tools})
    times: dict[str, dict[str, list[float]]] = {tool: {"mcp": [], "direct": []} for tool in wanted}
    async with Client(build_workspace_server(root)) as client:
        for rep in range(reps + 1):
            for tool in wanted:
                started = time.perf_counter()
                result = await client.call_tool(tool, arguments[tool])
                through_mcp = (time.perf_counter() - started) * 1000
                if result.is_error:
                    raise RuntimeError(f"{tool} failed: {result.content}")
                started = time.perf_counter()
                functions[tool](jail, **arguments[tool])
                direct = (time.perf_counter() - started) * 1000
                if rep:  # the first round warms imports and caches
                    times[tool]["mcp"].append(through_mcp)
                    times[tool]["direct"].append(direct)
    return times


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50), 3), "p99_ms": round(percentile(values, 99), 3)}


def report(times: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Per toolset: p50/p99 over every call of its tools (MCP), the direct baseline, and per tool."""
    results: dict[str, Any] = {}
    for name, tools in toolsets().items():
        mcp = [ms for tool in tools for ms in times[tool]["mcp"]]
        direct = [ms for tool in tools for ms in times[tool]["direct"]]
        results[name] = {
            **_stats(mcp),
            "direct_p50_ms": round(percentile(direct, 50), 3),
            "direct_p99_ms": round(percentile(direct, 99), 3),
            "calls": len(mcp),
            "tools": {
                tool: {
                    **_stats(times[tool]["mcp"]),
                    "direct_p50_ms": round(percentile(times[tool]["direct"], 50), 3),
                    "mcp_overhead_p50_ms": round(
                        percentile(times[tool]["mcp"], 50) - percentile(times[tool]["direct"], 50), 3
                    ),
                    "runs_a_process": tool in SUBPROCESS,
                }
                for tool in tools
            },
        }
    return results


async def main(reps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, _health_server() as probe_url:
        times = await _measure(_workspace(Path(tmp)), reps, probe_url)
    return report(times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="timed calls per tool and path (after one warm-up)")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    figures = anyio.run(main, args.reps)
    print(f"{'toolset':<9} {'p50':>10} {'p99':>10} {'direct p50':>11}  tools")
    for name, row in figures.items():
        print(
            f"{name:<9} {row['p50_ms']:>8.2f}ms {row['p99_ms']:>8.2f}ms {row['direct_p50_ms']:>9.2f}ms  "
            + ", ".join(f"{t} {r['p50_ms']:.1f}" for t, r in row["tools"].items())
        )
    path = write(
        "toolset_latency",
        {
            **figures,
            "parameters": {
                "reps": args.reps,
                "transport": "in-process mcp.Client",
                "includes_wrapped_tool_process_time": True,
                "skipped": SKIPPED,
            },
        },
    )
    print(f"wrote {path}")
