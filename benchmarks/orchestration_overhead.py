"""Orchestration overhead: a full task minus the model and the router.

Each task names its agent (``agent="ops"``, so no routing embedding) and goes
prioritizer -> agent loop (survey: ``log_summary`` on a 20-line log; a FunctionModel that makes one
tool call, ``state_get``, then finishes) -> in-process MCP -> one memory transaction.

Baseline, measured in the same run: the irreducible work of such a task done by hand — the same
two MCP tool calls through an already open client, the same two scripted model calls, and the same
memory write — with no queue, no graph and no events. The ratio is mcphive's cost over that.

The routing stage is measured separately (semantic stage with the MiniLM embedding).

    python benchmarks/orchestration_overhead.py [--tasks 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import anyio
from _common import summary, write
from mcp import Client

from mcphive import Hive, Settings, TaskResult, TaskStatus
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, final, tool_call
from mcphive.mcp_servers.state import StateStore, build_state_server
from mcphive.mcp_servers.workspace import build_workspace_server
from mcphive.memory import EpisodicMemory
from mcphive.types import Route, Step, Task, ToolCall

TEXT = "summarize the errors in the application log"
ROUTE_TEXTS = [
    "the nightly job keeps timing out",
    "write docstrings for the pricing module",
    "scan for hard-coded secrets",
    "lint the Dockerfile",
    "why does test_discount fail",
]


def one_tool_then_finish(request: ChatRequest) -> ChatResponse:
    if request.tool_choice == "none":
        return final("two errors, both upstream timeouts")
    return tool_call("state_get", namespace="bench", key="k")


def make_workspace(root: Path) -> Path:
    (root / "logs").mkdir(parents=True)
    lines = [f"2026-11-28T10:00:{i:02d}Z INFO app: request ok id={i}" for i in range(18)]
    lines += ["2026-11-28T10:00:30Z ERROR app: ConnectionError: upstream timeout"] * 2
    (root / "logs" / "app.log").write_text("\n".join(lines) + "\n")
    return root


async def bench_hive(settings: Settings, workspace: Path, n: int) -> tuple[list[float], dict[str, list[float]], float]:
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    model = FunctionModel(one_tool_then_finish)
    async with Hive.open(settings.model_copy(update={"max_model_steps": 1}), model=model) as hive:
        for _ in range(20):  # warm-up: connections, graph compile, SQLite pages
            await hive.run(TEXT, workspace=workspace, agent="ops")
        started_all = time.perf_counter()
        for _ in range(n):
            started = time.perf_counter()
            result = await hive.run(TEXT, workspace=workspace, agent="ops")
            latencies.append((time.perf_counter() - started) * 1000)
            assert result.status is TaskStatus.SUCCEEDED, result.error
            _collect(result, stages)
        throughput = n / (time.perf_counter() - started_all)
    return latencies, stages, throughput


def _collect(result: TaskResult, stages: dict[str, list[float]]) -> None:
    tools = {c.tool: c.duration_ms for c in result.tool_calls}
    for name, value in [*result.timings.items(), *((f"tool:{k}_ms", v) for k, v in tools.items())]:
        stages.setdefault(name, []).append(value)


async def bench_baseline(settings: Settings, workspace: Path, n: int) -> list[float]:
    memory = EpisodicMemory.open(settings.database_url)
    model = FunctionModel(one_tool_then_finish)
    latencies: list[float] = []
    async with Client(build_workspace_server(workspace)) as ws, Client(build_state_server(StateStore())) as state:
        for i in range(n + 20):
            started = time.perf_counter()
            task = Task(text=TEXT, workspace=str(workspace), agent="ops")
            await memory.record_task(task)
            survey = await ws.call_tool("log_summary", {"path": "logs/app.log"})
            choice = await model.chat(ChatRequest(messages=[], tool_choice="required"))
            call = choice.message.tool_calls[0]
            chosen = await state.call_tool(call.name, call.arguments)
            answer = await model.chat(ChatRequest(messages=[], tool_choice="none"))
            steps = [
                Step(
                    index=0,
                    kind="survey",
                    tool_calls=[
                        ToolCall(
                            server="workspace",
                            tool="log_summary",
                            arguments={"path": "logs/app.log"},
                            structured=survey.structured_content,
                            chosen_by="survey",
                        )
                    ],
                ),
                Step(
                    index=1,
                    kind="model",
                    tool_calls=[
                        ToolCall(
                            server="state",
                            tool=call.name,
                            arguments=call.arguments,
                            structured=chosen.structured_content,
                            chosen_by="model",
                        )
                    ],
                ),
                Step(index=2, kind="final", message=answer.message.content),
            ]
            await memory.record_result(
                TaskResult(
                    task_id=task.id,
                    text=TEXT,
                    status=TaskStatus.SUCCEEDED,
                    agent="ops",
                    route=Route(agent="ops", confidence=1, stage="explicit"),
                    steps=steps,
                    answer=answer.message.content,
                )
            )
            if i >= 20:
                latencies.append((time.perf_counter() - started) * 1000)
    memory.close()
    return latencies


async def bench_routing(settings: Settings, n: int) -> list[float]:
    latencies: list[float] = []
    async with Hive.open(settings, model=FunctionModel(one_tool_then_finish)) as hive:
        await hive.route("warm up the embedder")
        for i in range(n):
            text = f"{ROUTE_TEXTS[i % len(ROUTE_TEXTS)]} (case {i})"  # unique text: no embedding cache hits
            started = time.perf_counter()
            await hive.route(text)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = make_workspace(Path(tmp) / "ws")
        settings = Settings(data_dir=Path(tmp) / "data", workers=1)
        latencies, stages, throughput = await bench_hive(settings, workspace, n)
        durable_settings = Settings(data_dir=Path(tmp) / "durable", workers=1, queue="sqlite")
        durable, _, durable_throughput = await bench_hive(durable_settings, workspace, n)
        baseline = await bench_baseline(Settings(data_dir=Path(tmp) / "base"), workspace, n)
        routing = await bench_routing(Settings(data_dir=Path(tmp) / "route"), 100)
    task, base = summary(latencies), summary(baseline)
    result = {
        "tasks": n,
        **task,
        "tasks_per_s": round(throughput, 1),
        "stages": {name: summary(values) for name, values in sorted(stages.items())},
        "baseline": {"what": "same MCP calls, model calls and memory write by hand; no queue, graph or events", **base},
        "overhead_ratio_p50": round(task["p50_ms"] / base["p50_ms"], 2),
        "routing": {"what": "semantic stage incl. MiniLM embedding of unseen text", **summary(routing)},
        "durable": {
            "what": "the same tasks through the durable SQLite queue (lease, heartbeat task, complete)",
            **summary(durable),
            "tasks_per_s": round(durable_throughput, 1),
        },
        "target": {"p50_ms": 10.0},
    }
    path = write("orchestration_overhead", result)
    print(f"{'measure':<34}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'full task (mcphive)':<34}{task['p50_ms']:>10.2f}{task['p99_ms']:>10.2f}")
    print(f"{'baseline (same work by hand)':<34}{base['p50_ms']:>10.2f}{base['p99_ms']:>10.2f}")
    for name, s in result["stages"].items():
        print(f"  {name:<32}{s['p50_ms']:>10.2f}{s['p99_ms']:>10.2f}")
    print(f"{'routing (semantic)':<34}{result['routing']['p50_ms']:>10.2f}{result['routing']['p99_ms']:>10.2f}")
    durable_row = result["durable"]
    print(f"{'full task, durable SQLite queue':<34}{durable_row['p50_ms']:>10.2f}{durable_row['p99_ms']:>10.2f}")
    print(
        f"tasks/s {throughput:.1f}; overhead ratio (p50) {result['overhead_ratio_p50']}; target p50 <= 10 ms; -> {path}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    anyio.run(main, parser.parse_args().tasks)
