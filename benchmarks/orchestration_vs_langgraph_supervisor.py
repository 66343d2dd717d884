"""mcphive against a ``langgraph-supervisor`` baseline: the same tasks, model, tools, checkpointer and routing.

The same 1,000 tasks (ops requests: an alert name or a question about logs, each with a unique
suffix) run through both systems with the same scripted model function, the same in-process MCP
tool servers and the same LangGraph checkpoint saver (``--saver sqlite``: mcphive's
``SqliteCheckpoints`` on a fresh file, as beside a SQLite queue; ``--saver memory``: an
``InMemorySaver``). Routing is decided once, before anything is timed, by mcphive's router
(``hive.route``); both sides then get that decision, so neither pays for the MiniLM embedding.
Both systems stay open and take turns in blocks of 25 tasks, so drift of the shared machine hits
both alike.

Per task, mcphive (``hive.run(text, agent=<decision>)``) does:
  queue (``--saver sqlite``: the durable SQLite queue: enqueue, claim with a lease, complete;
  ``memory``: the in-process queue) -> agent manager -> the agent loop graph checkpointed under the
  task id: turn 1 (survey: ``log_summary`` and ``metrics_check`` through MCP; model call 1 chooses
  ``state_get``) -> turn 2 (``state_get`` through MCP; the step limit, 1, is reached) -> summary
  (model call 2) -> task and result recorded in episodic memory (SQLite) -> events -> checkpoint
  thread deleted.

Per task, the baseline (``supervisor.ainvoke`` with ``thread_id`` = a new task id) does:
  supervisor model call 1 (the handoff ``transfer_to_<decision>``, scripted) -> the ``create_react_agent``
  agent: model call 1 (three tool calls in one message: ``log_summary``, ``metrics_check``,
  ``state_get``, run by LangGraph's ToolNode through the same MCP servers) -> model call 2 (final
  answer) -> handoff back -> supervisor model call 2 (final answer); every super-step
  checkpointed by the saver. The two extra supervisor model calls are the supervisor design's own
  cost; the model itself is a function call on both sides.

Model: one ``mcphive.inference.testing.FunctionModel`` script; the baseline reaches it through a
thin LangChain ``BaseChatModel`` adapter (messages in, ``AIMessage`` with tool calls out).

    python benchmarks/orchestration_vs_langgraph_supervisor.py [--tasks 1000] [--saver sqlite|memory|both]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import anyio
from _common import summary, write
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.prebuilt import create_react_agent
from langgraph_supervisor import create_supervisor
from mcp import Client
from orchestration_overhead import make_workspace
from pydantic import Field

from mcphive import Hive, Settings, TaskStatus
from mcphive.inference.base import ChatMessage, ChatRequest, ChatResponse, ModelToolCall, ToolSpec
from mcphive.inference.testing import FunctionModel, final, tool_call
from mcphive.mcp_servers.state import StateStore, build_state_server
from mcphive.mcp_servers.workspace import build_workspace_server

# langgraph-supervisor builds its agents with create_react_agent, deprecated in LangGraph 1.x.
warnings.filterwarnings("ignore", message="create_react_agent has been moved")

AGENT = "ops"
SURVEY = (("log_summary", {"path": "logs/app.log"}), ("metrics_check", {"path": "."}))
TEXTS = [
    "HighErrorRate firing on the checkout api",
    "summarize the errors in the application log",
    "the nightly job keeps timing out, check the logs",
    "error rate above threshold on the payments service",
    "p99 latency alert on the gateway since the deploy",
    "disk almost full on the log volume of the worker nodes",
    "what caused the 5xx burst this morning",
    "investigate the outage of the search service",
]


def script(request: ChatRequest) -> ChatResponse:
    """The one scripted model both systems call.

    The supervisor (offered ``transfer_to_*`` tools) hands off to the routed agent, then answers once the
    agent has reported back. An agent first asks for ``state_get`` (the baseline's agent also asks for the
    survey calls mcphive makes by itself), then answers.
    """
    names = {tool.name for tool in request.tools}
    done = any(m.role == "tool" for m in request.messages)
    if any(name.startswith("transfer_to_") for name in names):
        if any(m.role == "assistant" and m.name == AGENT for m in request.messages):
            return final("ops: two errors, both upstream timeouts")
        return tool_call(f"transfer_to_{AGENT}")
    if request.tool_choice == "none" or (names and done):
        return final("two errors, both upstream timeouts")
    calls = [ModelToolCall(id=f"{tool}_{uuid.uuid4().hex[:8]}", name=tool, arguments=args) for tool, args in SURVEY]
    state = ModelToolCall(
        id=f"state_{uuid.uuid4().hex[:8]}", name="state_get", arguments={"namespace": "bench", "key": "k"}
    )
    if "log_summary" in names:  # the baseline's agent: survey and choice in one message
        return ChatResponse(
            message=ChatMessage(role="assistant", tool_calls=[*calls, state]), finish_reason="tool_calls"
        )
    return tool_call("state_get", namespace="bench", key="k")


class FunctionChatModel(BaseChatModel):
    """A LangChain chat model that answers through an mcphive ``FunctionModel``."""

    model: Any
    tools: list[ToolSpec] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "mcphive-function"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FunctionChatModel:  # type: ignore[override]
        specs = [ToolSpec(name=getattr(t, "name", None) or t["name"]) for t in tools]
        return FunctionChatModel(model=self.model, tools=specs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("async only")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        converted = [
            ChatMessage(
                role="tool" if isinstance(m, ToolMessage) else "assistant" if isinstance(m, AIMessage) else "user",
                content=m.content if isinstance(m.content, str) else "",
                name=m.name,
            )
            for m in messages
        ]
        reply = await self.model.chat(ChatRequest(messages=converted, tools=self.tools))
        calls = [
            {"id": c.id, "name": c.name, "args": c.arguments, "type": "tool_call"} for c in reply.message.tool_calls
        ]
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content=reply.message.content, tool_calls=calls))]
        )


def mcp_tool(client: Client, name: str) -> StructuredTool:
    """One MCP tool as a LangChain tool (the call goes through the same in-process MCP client)."""

    async def call(**arguments: Any) -> str:
        result = await client.call_tool(name, arguments)
        return str(result.structured_content)

    return StructuredTool.from_function(coroutine=call, name=name, description=name, args_schema={"type": "object"})


async def decide(texts: list[str], data: Path) -> str:
    """mcphive's router decides every task once; every decision must be the bench's agent."""
    async with Hive.open(Settings(data_dir=data), model=FunctionModel(script)) as hive:
        picked = {(await hive.route(text)).agent for text in texts}
    if picked != {AGENT}:
        raise SystemExit(f"the router picked {picked} for the bench's texts; expected only {AGENT!r}")
    return AGENT


RunOne = Callable[[str], Awaitable[None]]
BLOCK = 25
"""Tasks per turn of each system: short blocks, so that a drifting load on the shared machine hits both alike."""


@contextlib.asynccontextmanager
async def mcphive_runner(saver: str, workspace: Path, data: Path, agent: str) -> AsyncIterator[RunOne]:
    """One task through mcphive: ``hive.run`` with the router's decision."""
    queue = "sqlite" if saver == "sqlite" else "memory"
    settings = Settings(data_dir=data, workers=1, queue=queue, approval="writes", max_model_steps=1)
    async with Hive.open(settings, model=FunctionModel(script)) as hive:

        async def run_one(text: str) -> None:
            result = await hive.run(text, workspace=workspace, agent=agent)
            if result.status is not TaskStatus.SUCCEEDED:
                raise SystemExit(f"mcphive task failed: {result.error}")

        yield run_one


@contextlib.asynccontextmanager
async def supervisor_runner(saver: str, workspace: Path, data: Path, agent: str) -> AsyncIterator[RunOne]:
    """One task through the ``langgraph-supervisor`` baseline, on a new thread id."""
    from langgraph.checkpoint.memory import InMemorySaver

    from mcphive.router.checkpoints import sqlite_checkpoints

    model = FunctionChatModel(model=FunctionModel(script))
    await anyio.Path(data).mkdir(parents=True, exist_ok=True)
    async with (
        contextlib.AsyncExitStack() as stack,
        Client(build_workspace_server(workspace)) as ws,
        Client(build_state_server(StateStore())) as state,
    ):
        if saver == "sqlite":  # the saver mcphive uses beside a SQLite queue, with the same serializer
            checkpointer: Any = stack.enter_context(sqlite_checkpoints(data / "checkpoints.db", JsonPlusSerializer()))
        else:
            checkpointer = InMemorySaver()
        tools = [mcp_tool(ws, name) for name, _ in SURVEY] + [mcp_tool(state, "state_get")]
        worker = create_react_agent(model, tools, name=agent)
        supervisor = create_supervisor([worker], model=model).compile(checkpointer=checkpointer)

        async def run_one(text: str) -> None:
            out = await supervisor.ainvoke(
                {"messages": [{"role": "user", "content": text}]},
                {"configurable": {"thread_id": uuid.uuid4().hex}},
            )
            if not str(out["messages"][-1].content).startswith("ops:"):
                raise SystemExit(f"baseline task did not finish: {out['messages'][-1]}")

        yield run_one


async def run(saver: str, texts: list[str], root: Path, agent: str) -> dict[str, Any]:
    workspace = root / "ws"
    if not workspace.exists():
        make_workspace(workspace)
    timed: dict[str, list[float]] = {"mcphive": [], "baseline": []}
    async with (
        mcphive_runner(saver, workspace, root / f"hive-{saver}", agent) as mine,
        supervisor_runner(saver, workspace, root / f"sup-{saver}", agent) as base,
    ):
        runners = {"mcphive": mine, "baseline": base}
        for run_one in runners.values():  # warm-up: connections, graph compile, SQLite pages
            for text in texts[:20]:
                await run_one(f"warm-up {text}")
        for block, first in enumerate(range(0, len(texts), BLOCK)):
            order = list(runners) if block % 2 == 0 else list(runners)[::-1]
            for name in order:
                for text in texts[first : first + BLOCK]:
                    started = time.perf_counter()
                    await runners[name](text)
                    timed[name].append((time.perf_counter() - started) * 1000)
    mcphive, baseline = summary(timed["mcphive"]), summary(timed["baseline"])
    return {
        "mcphive_ms_per_task": mcphive["mean_ms"],
        "baseline_ms_per_task": baseline["mean_ms"],
        "ratio": round(mcphive["mean_ms"] / baseline["mean_ms"], 3),
        "mcphive": mcphive,
        "baseline": baseline,
    }


async def main(n: int, savers: list[str]) -> None:
    texts = [f"{TEXTS[i % len(TEXTS)]} (case {i})" for i in range(n)]
    load_start = round(os.getloadavg()[0], 2)  # the machine is shared: a busy one slows both sides unevenly
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        agent = await decide(texts, root / "route")
        modes = {saver: await run(saver, texts, root, agent) for saver in savers}
    primary = modes[savers[0]]
    result = {
        "mcphive_ms_per_task": primary["mcphive_ms_per_task"],
        "baseline_ms_per_task": primary["baseline_ms_per_task"],
        "ratio": primary["ratio"],
        "tasks": n,
        "checkpointer": savers[0],
        "modes": modes,
        "what": {
            "mcphive": "hive.run(text, agent=decision): queue, manager, checkpointed agent graph (2 survey + 1 chosen "
            "MCP tool call, 2 model calls), episodic record, events",
            "baseline": "langgraph-supervisor: handoff (scripted to the same decision), create_react_agent with the "
            "same 3 MCP tool calls and 2 model calls, handoff back, supervisor answer; same saver",
        },
        "target": {"ratio": 1.0},
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
    }
    path = write("orchestration_vs_langgraph_supervisor", result)
    for saver, m in modes.items():
        print(
            f"{saver:<7} mcphive {m['mcphive_ms_per_task']:.2f} ms/task"
            f"  supervisor {m['baseline_ms_per_task']:.2f} ms/task  ratio {m['ratio']:.3f}"
        )
    print(f"-> {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--saver", choices=["sqlite", "memory", "both"], default="both")
    args = parser.parse_args()
    anyio.run(main, args.tasks, ["sqlite", "memory"] if args.saver == "both" else [args.saver])
