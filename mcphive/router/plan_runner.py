"""Running a plan: each subtask gets a typed brief, independent subtasks run in parallel, and
results flow between them through the shared state server.

A subtask's brief carries its goal, the request it is part of, and the typed results of the steps
it depends on (answer, most severe findings, files changed) — read back from the state server,
where every finished step publishes its outcome — not the whole conversation. A step whose
dependency failed is skipped, and says why.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from mcphive.agents.loop import ApprovalNeeded, Emit
from mcphive.agents.toolbox import Connection
from mcphive.errors import MCPHiveError
from mcphive.outcome import fill_outcome
from mcphive.types import ApprovalDecision, Plan, PlanStep, Route, Task, TaskResult, TaskStatus, Usage

__all__ = ["Emit", "RunSubtask", "brief", "goal_of", "run_plan", "step_call_key", "step_decisions", "step_task_id"]

RunSubtask = Callable[[Task, TaskResult, PlanStep], Awaitable[None]]

_BRIEF_RESULT_CHARS = 600
_STEP_OF = "This is one step of the request: "
_STEP_IDS = uuid.UUID("5d1e7c3a-8f0b-4c39-9a57-2b6f0e4d9c11")
_BRIEF_FINDINGS = 5

log = logging.getLogger(__name__)


def brief(step: PlanStep, parent_text: str, inputs: dict[str, dict[str, Any]]) -> str:
    """The subtask's text: its goal, the request it serves, and its inputs' typed outcomes.

    Each input contributes its status, its answer, its most severe findings and the files it changed.
    """
    lines = [step.goal, "", f'{_STEP_OF}"{parent_text}".']
    if inputs:
        lines.append("Results of the steps it builds on:")
        for sid, outcome in inputs.items():
            answer = str(outcome.get("answer", ""))[:_BRIEF_RESULT_CHARS]
            lines.append(f"- {sid} ({outcome.get('agent')}, {outcome.get('status')}, "
                         f"{outcome.get('findings', 0)} findings): {answer}")  # fmt: skip
            lines.extend(f"  - finding: {_finding_line(f)}" for f in outcome.get("top_findings") or [])
            lines.extend(
                f"  - changed: {c.get('action', 'modified')} {c.get('path')} ({c.get('summary', '')})"
                for c in outcome.get("changes") or []
            )
    return "\n".join(lines)


def step_task_id(task_id: str, step_id: str) -> str:
    """The id of step ``step_id`` of task ``task_id``'s plan: the same on every run of the task.

    A plan that runs again (its worker died) finds each step's checkpoint and ledger entries under it:
    a finished step is not run again and a started one continues where it stopped.
    """
    return uuid.uuid5(_STEP_IDS, f"{task_id}/{step_id}").hex


def goal_of(text: str) -> str:
    """The goal a subtask's text was briefed with (:func:`brief`'s first part); other text as it is."""
    goal, marker, _rest = text.partition(f"\n\n{_STEP_OF}")
    return goal if marker else text


def _finding_line(finding: dict[str, Any]) -> str:
    where = f"{finding.get('file')}:{finding['line']}" if finding.get("line") else str(finding.get("file"))
    return f"[{finding.get('severity')}] {where} {finding.get('rule')}: {finding.get('message', '')}"[:200]


def _outcome(result: TaskResult) -> dict[str, Any]:
    """What a finished step publishes for the steps that depend on it: its typed result, in brief."""
    return {
        "agent": result.agent,
        "status": result.status.value,
        "answer": result.answer,
        "findings": len(result.findings),
        "top_findings": [f.model_dump(mode="json") for f in result.findings[:_BRIEF_FINDINGS]],
        "changes": [c.model_dump(mode="json") for c in result.changes],
    }


def step_call_key(step_id: str, key: str) -> str:
    """A step's writing call as the plan's task knows it: approvals are asked and decided on the plan's task."""
    return f"{step_id}/{key}"


def step_decisions(step_id: str, decisions: Mapping[str, ApprovalDecision]) -> dict[str, ApprovalDecision]:
    """The plan's decisions that are about step ``step_id``'s calls, keyed as the step knows them
    (the inverse of :func:`step_call_key`)."""
    prefix = step_call_key(step_id, "")
    return {key.removeprefix(prefix): decision for key, decision in decisions.items() if key.startswith(prefix)}


class _PlanRun:
    def __init__(self, task: Task, plan: Plan, state: Connection, run_subtask: RunSubtask) -> None:
        self.task, self.plan, self.state, self.run_subtask = task, plan, state, run_subtask
        self.namespace = f"plan:{task.id}"
        self.done = {step.id: anyio.Event() for step in plan.steps}
        self.results: dict[str, TaskResult] = {}
        self.parked: ApprovalNeeded | None = None
        self.scope = anyio.CancelScope()

    async def _read(self, key: str) -> dict[str, Any]:
        got = await self.state.client.call_tool("state_get", {"namespace": self.namespace, "key": key})
        value = (got.structured_content or {}).get("value")
        return value if isinstance(value, dict) else {}

    async def _publish(self, key: str, value: dict[str, Any]) -> None:
        await self.state.client.call_tool("state_put", {"namespace": self.namespace, "key": key, "value": value})

    async def run_step(self, step: PlanStep) -> None:
        try:
            for dep in step.depends_on:
                await self.done[dep].wait()
            inputs = {dep: await self._read(dep) for dep in step.depends_on}
            child = Task(id=step_task_id(self.task.id, step.id), text=brief(step, self.task.text, inputs),
                         workspace=self.task.workspace, priority=self.task.priority, agent=step.agent,
                         principal=self.task.principal)  # fmt: skip
            result = TaskResult(task_id=child.id, text=child.text, status=TaskStatus.RUNNING, principal=child.principal)
            failed = [d for d, o in inputs.items() if o.get("status") != TaskStatus.SUCCEEDED.value]
            if failed:
                result.status, result.error = (
                    TaskStatus.CANCELLED,
                    f"skipped: step(s) {', '.join(failed)} did not succeed",
                )
                result.agent = step.agent
            else:
                await self._run_child(child, result, step)
                if self.parked is not None:
                    return
            fill_outcome(result)
            self.results[step.id] = result
            await self._publish(step.id, _outcome(result))
        finally:
            self.done[step.id].set()

    async def _run_child(self, child: Task, result: TaskResult, step: PlanStep) -> None:
        try:
            await self.run_subtask(child, result, step)
        except ApprovalNeeded as e:
            # The whole plan parks on its task: the other steps stop where they are, checkpointed, and every
            # step continues (a finished one returns its saved state) when the plan's task is claimed again.
            request = e.request.model_copy(
                update={"task_id": self.task.id, "call_key": step_call_key(step.id, e.request.call_key)}
            )
            if self.parked is None:
                self.parked = ApprovalNeeded(request)
            self.scope.cancel()
        except MCPHiveError as e:  # one failed subtask fails its step, not the whole plan at once
            result.status, result.error = TaskStatus.FAILED, str(e)
        except Exception as e:  # a bug in one subtask must not take its siblings down either
            log.exception("subtask %s of task %s crashed", child.id, self.task.id)
            result.status, result.error = TaskStatus.FAILED, f"{type(e).__name__}: {e}"


async def run_plan(task: Task, plan: Plan, result: TaskResult, run_subtask: RunSubtask, emit: Emit,
                   state: Connection) -> None:  # fmt: skip
    """Run every step of ``plan`` (in parallel where the DAG allows) and fill ``result`` with the outcome."""
    reason = "; ".join(f"{s.id} {s.agent}: {s.goal}" for s in plan.steps)
    result.route = Route(agent=None, confidence=1.0, stage="plan", reason=f"{len(plan.steps)} subtasks — {reason}")
    await emit("planned", plan.model_dump())
    run = _PlanRun(task, plan, state, run_subtask)
    with run.scope:
        async with anyio.create_task_group() as tg:
            for step in plan.steps:
                tg.start_soon(run.run_step, step)
    if run.parked is not None:
        result.subtasks = [run.results[step.id] for step in plan.steps if step.id in run.results]
        raise run.parked
    result.subtasks = [run.results[step.id] for step in plan.steps]
    result.usage = sum((sub.usage for sub in result.subtasks), Usage())
    result.model = next((sub.model for sub in result.subtasks if sub.model), "")
    result.answer = "\n\n".join(f"[{s.id} · {r.agent}] {r.answer or r.error or ''}".strip()
                                for s, r in zip(plan.steps, result.subtasks, strict=True))  # fmt: skip
    failed = [s.id for s, r in zip(plan.steps, result.subtasks, strict=True) if r.status is not TaskStatus.SUCCEEDED]
    result.status = TaskStatus.FAILED if failed else TaskStatus.SUCCEEDED
    result.error = f"plan steps {', '.join(failed)} did not succeed" if failed else None
    fill_outcome(result)  # the subtasks' findings merged, their changes in plan order
