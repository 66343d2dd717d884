"""The agent manager: carries one task from its route to a recorded result.

For each claimed task it routes (unless already routed), opens the agent's scoped tool view,
runs the shared agent loop under the task's time limit and cancel scope, and records the whole
:class:`~mcphive.types.TaskResult` in episodic memory in one transaction.

A task whose writing call needs an approval nobody has given yet ends its run :class:`Parked`: its
steps so far are recorded with the status ``awaiting_approval``, its checkpoint is kept, and the
caller sets it aside in the queue. The caller deletes the checkpoint (:meth:`AgentManager.forget`)
once the task has ended while it still held the task's lease.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
from opentelemetry import trace

from mcphive.agents.budget import Budget
from mcphive.agents.loop import ApprovalNeeded, Ledger, LoopContext, run_agent
from mcphive.agents.spec import AgentSpec
from mcphive.agents.toolbox import Connection, ToolBox, ToolOutcome
from mcphive.errors import MCPHiveError, ModelUnavailable, TaskTimeout
from mcphive.inference.base import ChatModel
from mcphive.memory import EpisodicMemory
from mcphive.outcome import fill_outcome
from mcphive.router.cascade import RoutingCascade
from mcphive.router.events import EventBus
from mcphive.router.plan_runner import Emit, RunSubtask, run_plan, step_decisions
from mcphive.router.planner import InvalidPlan, Planner
from mcphive.router.slots import AgentSlots
from mcphive.tracing import tracer
from mcphive.types import (
    ApprovalDecision,
    ApprovalRequest,
    Plan,
    PlanStep,
    Route,
    Task,
    TaskResult,
    TaskStatus,
    Usage,
)

__all__ = ["AgentManager", "ManagerDeps", "Parked"]

log = logging.getLogger(__name__)

_PLAN_KEY = "plan"
"""The ledger key of a task's plan from the model."""


@dataclass
class ManagerDeps:
    """What the manager needs, handed over by the composition root."""

    specs: dict[str, AgentSpec]
    cascade: RoutingCascade
    memory: EpisodicMemory
    events: EventBus
    connections: Callable[[Task], Awaitable[list[Connection]]]
    model: Callable[[], ChatModel]
    max_model_steps: int
    task_timeout_s: float
    planner: Planner | None = None
    max_task_tokens: int | None = None
    approval_required: bool = False
    """Writing tool calls wait for an approval (settings ``approval = "writes"``)."""
    ledger: Ledger | None = None
    checkpointer: Any = None
    """A LangGraph checkpoint saver: a re-run task continues from its last completed step."""
    slots: AgentSlots | None = None
    """Per-agent concurrency limits: every run of a limited agent holds one of its slots."""


@dataclass(frozen=True)
class Parked:
    """A run that stopped at a writing call awaiting approval; ``result`` holds the steps so far."""

    result: TaskResult
    request: ApprovalRequest


class AgentManager:
    """Runs tasks with a timeout and cancellation, and records what happened."""

    def __init__(self, deps: ManagerDeps) -> None:
        self._d = deps
        self._scopes: dict[str, anyio.CancelScope] = {}

    def cancel(self, task_id: str) -> bool:
        """Cancel a running task; True if it was running here."""
        scope = self._scopes.get(task_id)
        if scope is None:
            return False
        scope.cancel()
        return True

    async def forget(self, task_id: str, subtask_ids: Iterable[str] = ()) -> None:
        """Delete a task's checkpoint, and its plan's steps' (``subtask_ids``), once the task has ended for good."""
        if self._d.checkpointer is not None:
            for thread in (task_id, *subtask_ids):
                await self._d.checkpointer.adelete_thread(thread)

    async def execute(self, task: Task, decisions: Mapping[str, ApprovalDecision] | None = None) -> TaskResult | Parked:
        """Route and run ``task`` to completion, failure, timeout, cancellation or an approval; always recorded.

        Args:
            task: the task; a task run before continues from its checkpoint.
            decisions: approval decisions already taken for the task's writing calls, by call key.
        """
        timings: dict[str, float] = {}
        result = TaskResult(task_id=task.id, text=task.text, status=TaskStatus.RUNNING, principal=task.principal)
        parked: ApprovalRequest | None = None
        emit = self._emitter(task.id)
        started = time.perf_counter()
        span = tracer().start_span("mcphive.task", attributes=_task_attributes(task))
        _queue_wait_span(task, span)
        with anyio.CancelScope() as scope, trace.use_span(span, end_on_exit=True):
            self._scopes[task.id] = scope
            try:
                await self._d.memory.set_status(task.id, TaskStatus.RUNNING)
                await emit("started", {})
                await self._run(task, result, timings, emit, decisions or {})
                span.set_attribute("mcphive.status", result.status.value)
            except ApprovalNeeded as e:
                parked, result.status = e.request, TaskStatus.AWAITING_APPROVAL
                span.set_attribute("mcphive.status", result.status.value)
            except MCPHiveError as e:
                result.status, result.error = TaskStatus.FAILED, str(e)
            except Exception as e:  # a bug or library failure must still end the task as failed, on record
                log.exception("task %s crashed", task.id)
                result.status, result.error = TaskStatus.FAILED, f"{type(e).__name__}: {e}"
        self._scopes.pop(task.id, None)
        if scope.cancelled_caught:
            result.status, result.error = TaskStatus.CANCELLED, "cancelled"
        fill_outcome(result)  # findings, changes and summary from the steps, whatever the outcome
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        result.timings = timings
        with anyio.CancelScope(shield=True):
            started = time.perf_counter()
            await self._d.memory.record_result(result)
            # Measured after the write, so the stored timings lack it; the returned result has it.
            timings["record_ms"] = (time.perf_counter() - started) * 1000
            if parked is not None:
                # No event yet: the caller announces ``awaiting_approval`` once the queue holds the request,
                # so whoever reacts to the event finds it there.
                return Parked(result, parked)
            await emit("finished", {"status": result.status.value, "error": result.error})
        return result

    def _emitter(self, task_id: str) -> Emit:
        async def emit(kind: str, data: dict[str, Any]) -> None:
            self._d.events.publish(task_id, kind, data)

        return emit

    async def _route(self, task: Task, timings: dict[str, float]) -> Route:
        started = time.perf_counter()
        with tracer().start_as_current_span("mcphive.route") as span:
            route = await self._d.cascade.route(task.text, task.agent)
            span.set_attributes({"mcphive.agent": route.agent or "", "mcphive.stage": route.stage,
                                 "mcphive.confidence": route.confidence})  # fmt: skip
        timings["route_ms"] = (time.perf_counter() - started) * 1000
        # The decision is stored with the result (record_result), in the task's one final transaction.
        return route

    async def _run(
        self,
        task: Task,
        result: TaskResult,
        timings: dict[str, float],
        emit: Emit,
        decisions: Mapping[str, ApprovalDecision],
    ) -> None:
        budget = Budget(self._d.max_task_tokens)  # one allowance for the task and all its subtasks
        try:
            with anyio.fail_after(self._d.task_timeout_s):
                plan, planning = await self._plan(task, budget, emit)
                if plan is not None:
                    state = next(c for c in await self._d.connections(task) if c.name == "state")
                    runner = self._subtask_runner(task.id, timings, emit, budget, decisions)
                    await run_plan(task, plan, result, runner, emit, state)
                else:
                    route = await self._route(task, timings)
                    await self._run_routed(task, route, result, timings, emit, budget, decisions, task.id)
                result.usage = result.usage + planning
        except TimeoutError as e:
            raise TaskTimeout(f"task ran past its {self._d.task_timeout_s:.0f} s limit; raise task_timeout_s") from e

    async def _plan(self, task: Task, budget: Budget, emit: Emit) -> tuple[Plan | None, Usage]:
        """The task's plan (None: one task) and the tokens planning took."""
        planner = self._d.planner
        if task.agent is not None or planner is None:
            return None, Usage()
        with tracer().start_as_current_span("mcphive.plan") as span:
            plan, usage = await planner.from_template(task.text), Usage()
            if plan is None and planner.asks_model(task.text):
                plan, usage = await self._model_plan(planner, task, budget, emit)
            span.set_attribute("mcphive.subtasks", len(plan.steps) if plan else 0)
            return plan, usage

    async def _model_plan(self, planner: Planner, task: Task, budget: Budget, emit: Emit) -> tuple[Plan | None, Usage]:
        """The model's plan for a request the template did not split, or None to run it as one task.

        The answer is recorded in the ledger: a plan handed out again must follow the same steps, since each
        step's checkpoint is found by its step id. A model that is down is not recorded (the next run asks again).
        """
        ledger = self._d.ledger
        if ledger is not None and (recorded := await ledger.recorded(task.id, _PLAN_KEY)) is not None:
            saved = (recorded.structured or {}).get("plan")
            return (Plan.model_validate(saved) if saved else None), Usage()
        plan: Plan | None
        try:
            plan, usage = await planner.plan_with_model(task.text, self._d.model())
        except ModelUnavailable as e:
            log.warning("task %s: the model could not plan it (%s); it runs as one task", task.id, e)
            return None, Usage()
        except InvalidPlan as e:
            log.warning("task %s: the model's plan was refused (%s); it runs as one task", task.id, e)
            plan, usage = None, Usage()
        await budget.charge(usage, emit)
        if plan is not None and len(plan.steps) < 2:
            plan = None  # one step: the cascade routes it like any task
        if ledger is not None:
            saved_plan = plan.model_dump(mode="json") if plan is not None else None
            outcome = ToolOutcome(text="", structured={"plan": saved_plan}, is_error=False, duration_ms=0.0)
            await ledger.record(task.id, _PLAN_KEY, "mcphive", "plan", {}, outcome)
        return plan, usage

    def _subtask_runner(
        self,
        plan_id: str,
        timings: dict[str, float],
        emit: Emit,
        budget: Budget,
        decisions: Mapping[str, ApprovalDecision],
    ) -> RunSubtask:
        async def run(child: Task, result: TaskResult, step: PlanStep) -> None:
            # The clause's own decision when the plan came from the template (shown and recorded as the route);
            # a model's plan assigns agents itself.
            route = step.route or Route(
                agent=step.agent, confidence=1.0, stage="explicit", reason="assigned by the plan"
            )
            mine = step_decisions(step.id, decisions)

            async def emit_step(kind: str, data: dict[str, Any]) -> None:  # parallel steps' events told apart
                await emit(kind, {**data, "plan_step": step.id})

            await self._run_routed(child, route, result, timings, emit_step, budget, mine, plan_id)

        return run

    async def _run_routed(
        self,
        task: Task,
        route: Route,
        result: TaskResult,
        timings: dict[str, float],
        emit: Emit,
        budget: Budget,
        decisions: Mapping[str, ApprovalDecision],
        owner: str,
    ) -> None:
        """Run the routed agent (a task, or a step of a plan under the step's own id), checkpointed.

        ``owner`` is the queued task the run belongs to (the task, or the step's plan): a slot of a
        limited agent lives as long as its lease.
        """
        result.route, result.agent = route, route.agent
        await emit("routed", route.model_dump())
        if route.agent is None:
            result.status, result.error = TaskStatus.FAILED, f"out of scope: {route.reason}"
            return
        spec = self._d.specs[route.agent]
        started = time.perf_counter()
        toolbox = ToolBox(await self._d.connections(task), spec.tools)
        model = self._d.model()
        timings["connect_ms"] = (time.perf_counter() - started) * 1000
        ctx = LoopContext(
            spec=spec,
            toolbox=toolbox,
            model=model,
            task_text=task.text,
            max_model_steps=self._d.max_model_steps,
            constrain=model.name.startswith("local"),
            emit=emit,
            budget=budget,
            task_id=task.id,
            approval_required=self._d.approval_required,
            decisions=decisions,
            ledger=self._d.ledger,
            checkpointer=self._d.checkpointer,
        )
        started = time.perf_counter()
        try:
            slot = self._d.slots.hold(route.agent, task.id, owner, emit) if self._d.slots else nullcontext()
            async with slot:
                run = await run_agent(ctx)
        except BaseException:
            # Whatever stopped the run (a dead model, a timeout, a cancel), the steps already done stay on record.
            result.steps = ctx.progress
            raise
        timings["agent_ms"] = (time.perf_counter() - started) * 1000
        result.steps, result.answer, result.usage, result.model = run["steps"], run["answer"], run["usage"], model.name
        result.status = TaskStatus.SUCCEEDED


def _task_attributes(task: Task) -> dict[str, Any]:
    return {
        "mcphive.task_id": task.id,
        "mcphive.priority": task.priority.value,
        "mcphive.tenant": task.principal.tenant,
        "mcphive.requested_agent": task.agent or "",
    }


def _queue_wait_span(task: Task, parent: trace.Span) -> None:
    """A span from the task's submission to its claim, recorded once the wait is over."""
    started_ns = int(task.created_at.timestamp() * 1e9)
    wait = tracer().start_span("mcphive.queue_wait", context=trace.set_span_in_context(parent), start_time=started_ns)
    wait.end()
