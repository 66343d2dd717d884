"""The one agent loop every specialist shares, built as a LangGraph graph.

::

    START -> turn --(a call chosen)--> turn ...
                  \\--(finish / step limit / repeat)--> summarize -> END

The first ``turn`` runs the spec's deterministic survey calls, so every agent has a useful floor
whatever the model; every later one makes the call the previous turn chose. Then the turn asks the
model for one bounded choice: a tool from the agent's scoped list, with arguments narrowed to valid
values (enums of the workspace's real files), or ``finish``. ``summarize`` asks the model for the
final answer. Each step records who chose it.

Durability: with a checkpointer the graph's state is saved after every node under the task's id,
so a run that stopped midway (its worker died, or it parked for approval) continues from its last
completed node. A tool that writes (see :meth:`ToolBox.writes`) may need an approval first
(:class:`ApprovalNeeded` stops the run until a decision exists), and its outcome is recorded in a
:class:`Ledger`, so a re-run returns the recorded outcome instead of writing again. A turn is one
node rather than two (calls, then choice) because every node costs a checkpoint: a worker that dies
during a turn's model call makes the turn's calls again on resume, and a writing one among them is
read back from the ledger rather than made twice.
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal, Protocol, TypedDict

import anyio
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from mcphive.agents.budget import Budget
from mcphive.agents.digest import as_data, digest
from mcphive.agents.schema import FINISH, narrowed_tools
from mcphive.agents.spec import AgentSpec
from mcphive.agents.toolbox import ToolBox, ToolOutcome
from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatModel, ChatRequest, ChatResponse, ModelToolCall
from mcphive.tracing import tracer
from mcphive.types import ApprovalDecision, ApprovalRequest, ChosenBy, Step, ToolCall, Usage

__all__ = ["AgentRun", "ApprovalNeeded", "Ledger", "LoopContext", "call_key", "run_agent"]

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
_MAX_BACKOFF_S = 30.0


class Ledger(Protocol):
    """Where completed writing calls are recorded (``mcphive.router.ledger.ToolLedger``)."""

    async def recorded(self, task_id: str, key: str) -> ToolOutcome | None: ...

    async def record(
        self, task_id: str, key: str, server: str, tool: str, arguments: dict[str, Any], outcome: ToolOutcome
    ) -> None: ...


class ApprovalNeeded(Exception):
    """The run reached a writing call that needs an approval nobody has given yet; the task parks."""

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__(f"{request.tool} on {request.server} needs approval")
        self.request = request


def call_key(position: int, server: str, tool: str, arguments: Mapping[str, Any]) -> str:
    """A writing call's key within its task: its step position and a hash of server, tool and arguments."""
    canonical = json.dumps([server, tool, arguments], sort_keys=True, default=str, ensure_ascii=False)
    return f"{position}:{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


@dataclass
class LoopContext:
    """What a run needs besides its state: the spec, the tools, the model and the event sink."""

    spec: AgentSpec
    toolbox: ToolBox
    model: ChatModel
    task_text: str
    max_model_steps: int
    constrain: bool
    emit: Emit
    budget: Budget = field(default_factory=lambda: Budget(None))
    model_retries: int = 2
    """Extra attempts for a transient model failure (server down, 429, 5xx), with backoff."""
    progress: list[Step] = field(default_factory=list)
    """Every step as it completes, so a run that fails midway still reports what it did."""
    task_id: str = ""
    """Keys the checkpoint thread, the ledger entries and approval requests."""
    approval_required: bool = False
    """Writing calls wait for a decision in ``decisions``; without one the run raises :class:`ApprovalNeeded`."""
    can_park: bool = True
    """False where nothing can wait for a decision: such calls are refused instead."""
    decisions: Mapping[str, ApprovalDecision] = field(default_factory=dict)
    ledger: Ledger | None = None
    checkpointer: Any = None
    """A LangGraph checkpoint saver; the run resumes from the last node it completed under ``task_id``."""


class AgentRun(TypedDict):
    """The graph's state: plain data, so a checkpointer can persist it."""

    steps: list[Step]
    usage: Usage
    model_steps: int
    pending: ModelToolCall | None
    answer: str
    surveyed: bool


@cache
def _common_prompt() -> str:
    return (resources.files("mcphive.agents") / "prompts" / "_common.md").read_text(encoding="utf-8")


def _context_messages(ctx: LoopContext, steps: list[Step]) -> list[ChatMessage]:
    observed = "\n".join(
        as_data(call.tool, digest(call.structured, call.result), budget=1500)
        for step in steps
        for call in step.tool_calls
    )
    return [
        ChatMessage(role="system", content=f"{ctx.spec.prompt}\n{_common_prompt()}"),
        ChatMessage(
            role="user", content=f"Task: {ctx.task_text}\n\nWhat the tools found so far:\n{observed or '(nothing yet)'}"
        ),
    ]


async def _call_tool(
    ctx: LoopContext, index: int, name: str, arguments: dict[str, Any], chosen_by: ChosenBy
) -> ToolCall:
    writes = ctx.toolbox.writes(name)
    server = ctx.toolbox.server_of(name) if name in ctx.toolbox.allowed else ""
    key = call_key(index, server, name, arguments) if writes else ""
    if writes and ctx.approval_required:
        refusal = _refusal(ctx, key, server, name, arguments)
        if refusal is not None:
            await ctx.emit("tool_call", {"step": index, "tool": name, "arguments": arguments,
                                         "chosen_by": chosen_by, "refused": refusal})  # fmt: skip
            return ToolCall(server=server, tool=name, arguments=arguments, result=refusal, is_error=True,
                            chosen_by=chosen_by)  # fmt: skip
    await ctx.emit("tool_call", {"step": index, "tool": name, "arguments": arguments, "chosen_by": chosen_by})
    outcome = await (_call_once(ctx, key, server, name, arguments) if writes else ctx.toolbox.call(name, arguments))
    return ToolCall(
        server=server,
        tool=name,
        arguments=arguments,
        result=outcome.text,
        structured=outcome.structured,
        is_error=outcome.is_error,
        chosen_by=chosen_by,
        duration_ms=outcome.duration_ms,
    )


def _refusal(ctx: LoopContext, key: str, server: str, name: str, arguments: dict[str, Any]) -> str | None:
    """None when the call was approved; the tool result the model gets when it was rejected; else park."""
    decision = ctx.decisions.get(key)
    if decision is None and not ctx.can_park:
        return f"{name} needs approval, which this run cannot wait for; the call was not made."
    if decision is None:
        request = ApprovalRequest(task_id=ctx.task_id, call_key=key, server=server, tool=name, arguments=arguments)
        raise ApprovalNeeded(request)
    if decision.approved:
        return None
    why = f": {decision.reason}" if decision.reason else ""
    return f"rejected by {decision.by or 'the approver'}{why}; the call was not made"


async def _call_once(ctx: LoopContext, key: str, server: str, name: str, arguments: dict[str, Any]) -> ToolOutcome:
    """A writing call, made unless the ledger holds its outcome from an earlier run of the task."""
    if ctx.ledger is None:
        return await ctx.toolbox.call(name, arguments)
    recorded = await ctx.ledger.recorded(ctx.task_id, key)
    if recorded is not None:
        return recorded
    outcome = await ctx.toolbox.call(name, arguments)
    await ctx.ledger.record(ctx.task_id, key, server, name, arguments, outcome)
    return outcome


async def _tool_step(ctx: LoopContext, steps: list[Step], name: str, arguments: dict[str, Any], by: ChosenBy) -> None:
    """Make one tool call as a step of its own, appended to ``steps`` and to the run's progress."""
    started = time.perf_counter()
    with tracer().start_as_current_span("mcphive.tool") as span:
        call = await _call_tool(ctx, len(steps), name, arguments, by)
        span.set_attributes({"mcphive.tool": name, "mcphive.server": call.server, "mcphive.chosen_by": by,
                             "mcphive.is_error": call.is_error})  # fmt: skip
    step = Step(
        index=len(steps),
        kind=by,
        tool_calls=[call],
        message=digest(call.structured, call.result),
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    steps.append(step)
    ctx.progress.append(step)
    await ctx.emit("step", {"index": step.index, "kind": by, "tool": call.tool, "is_error": call.is_error})


async def _chat(ctx: LoopContext, request: ChatRequest) -> ChatResponse:
    """One model call, retried with exponential backoff (or the server's Retry-After) when the failure is transient."""
    for attempt in range(ctx.model_retries + 1):
        try:
            with tracer().start_as_current_span("mcphive.model") as span:
                response = await ctx.model.chat(request)
                span.set_attributes({"gen_ai.request.model": ctx.model.name, "mcphive.tool_choice": request.tool_choice,
                                     "gen_ai.usage.input_tokens": response.usage.input_tokens,
                                     "gen_ai.usage.output_tokens": response.usage.output_tokens})  # fmt: skip
                return response
        except ModelUnavailable as e:
            if not e.transient or attempt == ctx.model_retries:
                raise
            delay = min(e.retry_after if e.retry_after is not None else 0.5 * 2**attempt, _MAX_BACKOFF_S)
            await ctx.emit("model", {"purpose": "retry", "attempt": attempt + 1, "delay_s": delay, "error": str(e)})
            await anyio.sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


def _finding_files(steps: list[Step]) -> list[str]:
    """The files the findings so far point to, in order of first mention."""
    files = []
    for step in steps:
        for call in step.tool_calls:
            for finding in (call.structured or {}).get("findings", []) or []:
                if isinstance(finding, dict) and finding.get("file"):
                    files.append(str(finding["file"]))
    return files


def _already_made(steps: list[Step], call: ModelToolCall) -> bool:
    return any(c.tool == call.name and c.arguments == call.arguments for s in steps for c in s.tool_calls)


async def turn(state: AgentRun, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    """Make the survey's calls (first turn) or the one the model chose last turn, then ask for the next choice."""
    ctx = runtime.context
    steps, model_steps, pending = list(state["steps"]), state["model_steps"], state["pending"]
    if not state["surveyed"]:
        for planned in ctx.spec.survey:
            await _tool_step(ctx, steps, planned.tool, dict(planned.arguments), "survey")
    if pending is not None:
        await _tool_step(ctx, steps, pending.name, pending.arguments, "model")
        model_steps += 1
    update: dict[str, Any] = {"steps": steps, "model_steps": model_steps, "pending": None, "surveyed": True}
    if model_steps >= ctx.max_model_steps or not ctx.toolbox.allowed:
        return update
    done = [(c.tool, c.arguments) for s in steps for c in s.tool_calls]
    # A constrained model makes at least one real choice before it may stop.
    tools = await narrowed_tools(
        ctx.toolbox,
        constrain=ctx.constrain,
        done=done,
        allow_finish=not ctx.constrain or model_steps > 0,
        focus=_finding_files(steps),
    )
    request = ChatRequest(messages=_context_messages(ctx, steps), tools=tools, tool_choice="required", max_tokens=160)
    response = await _chat(ctx, request)
    await ctx.emit("model", {"purpose": "choose", "usage": response.usage.model_dump()})
    await ctx.budget.charge(response.usage, ctx.emit)
    update["usage"] = state["usage"] + response.usage
    calls = response.message.tool_calls
    if calls and calls[0].name != FINISH and not _already_made(steps, calls[0]):
        update["pending"] = calls[0]
    return update


async def summarize(state: AgentRun, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    """Ask the model for the final answer over everything the tools found."""
    ctx = runtime.context
    started = time.perf_counter()
    messages = _context_messages(ctx, state["steps"])
    messages.append(ChatMessage(role="user", content="Summarize these findings for the engineer in a few lines."))
    response = await _chat(ctx, ChatRequest(messages=messages, tool_choice="none", max_tokens=200))
    await ctx.emit("model", {"purpose": "summarize", "usage": response.usage.model_dump()})
    await ctx.budget.charge(response.usage, ctx.emit)
    answer = _without_repeats(response.message.content)
    steps = [
        *state["steps"],
        Step(
            index=len(state["steps"]), kind="final", message=answer, duration_ms=(time.perf_counter() - started) * 1000
        ),
    ]
    return {"steps": steps, "answer": answer, "usage": state["usage"] + response.usage}


def _without_repeats(text: str) -> str:
    """Drop lines a small model already wrote (it loops under greedy decoding); keeps the first of each."""
    seen: set[str] = set()
    kept = []
    for line in text.strip().splitlines():
        key = line.strip().lower()
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(line)
    return "\n".join(kept).strip()


def _after_turn(state: AgentRun) -> Literal["turn", "summarize"]:
    return "turn" if state["pending"] is not None else "summarize"


_compiled: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


@cache
def _builder() -> StateGraph[AgentRun, LoopContext, AgentRun, AgentRun]:
    graph = StateGraph(AgentRun, context_schema=LoopContext)
    graph.add_node("turn", turn)
    graph.add_node("summarize", summarize)
    graph.add_edge(START, "turn")
    graph.add_conditional_edges("turn", _after_turn)
    graph.add_edge("summarize", END)
    return graph


def _graph(checkpointer: Any) -> Any:
    """The loop compiled once per checkpointer (or once without one)."""
    if checkpointer is None:
        return _plain_graph()
    graph = _compiled.get(checkpointer)
    if graph is None:
        graph = _compiled[checkpointer] = _builder().compile(checkpointer=checkpointer)
    return graph


@cache
def _plain_graph() -> Any:
    return _builder().compile()


async def run_agent(ctx: LoopContext) -> AgentRun:
    """Run the loop to its end and return the final state.

    With ``ctx.checkpointer``, a run of ``ctx.task_id`` that stopped midway continues from the last node
    it completed, and one that completed before its result was recorded is not run again.

    Raises:
        ApprovalNeeded: a writing call waits for a decision (its state up to the call is checkpointed).
    """
    initial: AgentRun = {
        "steps": [], "usage": Usage(), "model_steps": 0, "pending": None, "answer": "", "surveyed": False
    }  # fmt: skip
    limit = 3 + ctx.max_model_steps
    config: dict[str, Any] = {"recursion_limit": limit}
    start: AgentRun | None = initial
    if ctx.checkpointer is not None:
        config["configurable"] = {"thread_id": ctx.task_id}
        saved = await _graph(ctx.checkpointer).aget_state(config)
        if saved.values:  # the budget counts what the earlier run spent, not only this run's calls
            ctx.budget.carry(saved.values.get("usage") or Usage())
        if saved.values and not saved.next:
            done: AgentRun = saved.values
            return done
        if saved.next:
            start = None  # continue from the checkpoint
            ctx.progress[:] = saved.values.get("steps", [])
    # "sync": each checkpoint is written before the next node starts, so a worker killed during a node
    # resumes right before it.
    durability = "sync" if ctx.checkpointer is not None else None
    graph = _graph(ctx.checkpointer)
    result: AgentRun = await graph.ainvoke(start, context=ctx, config=config, durability=durability)
    return result
