"""Turning a TaskResult tree into table rows, and rows back into a TaskResult.

Kept free of sessions and SQL so that both directions are cheap, pure and easy to test. Nothing
reaches a row unredacted: :func:`redact_result` (run by the store before :func:`flatten`) replaces
every credential in every string of the tree, one detect-secrets batch per tree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mcphive.errors import UsageError
from mcphive.outcome import fill_outcome
from mcphive.redaction import redact_tree
from mcphive.types import Candidate, Principal, Route, Step, Task, TaskResult, TaskStatus, ToolCall, Usage

from ._tables import RouteDecisionRow, StepRow, TaskRow, ToolCallRow

__all__ = [
    "RESULT_CAP",
    "FlatResult",
    "TreeRows",
    "build_result",
    "flatten",
    "redact_result",
    "redact_route",
    "redact_task",
    "route_row",
    "truncate",
]

RESULT_CAP = 64 * 1024
"""Longest tool-call result text kept, in characters; longer results are cut and marked."""

_MARK = "\n[... truncated by mcphive memory: {dropped} more characters]"


def truncate(text: str, cap: int = RESULT_CAP) -> str:
    """Cut ``text`` to ``cap`` characters, saying how much was dropped."""
    if len(text) <= cap:
        return text
    return text[:cap] + _MARK.format(dropped=len(text) - cap)


def redact_result(result: TaskResult) -> list[str]:
    """Replace every credential anywhere in ``result``'s tree, in place; returns the types found.

    Every string counts: the task text, answer, error, route reason, step messages, tool-call
    arguments, results and structured results, and the derived findings, changes and summary. A
    credential found in one of them (a file the agent read) is replaced in all of them (the answer
    that quotes it). In place, so the caller's result and the stored one are the same.
    """
    [clean], kinds = redact_tree([result.model_dump()])
    if kinds:
        redacted = TaskResult.model_validate(clean)
        for name in TaskResult.model_fields:
            setattr(result, name, getattr(redacted, name))
    return kinds


def redact_task(task: Task) -> Task:
    """``task`` with credentials redacted from its text (a copy when there were any)."""
    [text], kinds = redact_tree([task.text])
    return task.model_copy(update={"text": text}) if kinds else task


def redact_route(route: Route) -> Route:
    """``route`` with credentials redacted from its reason and runners-up (a copy when there were any)."""
    [clean], kinds = redact_tree([route.model_dump()])
    return Route.model_validate(clean) if kinds else route


@dataclass
class FlatResult:
    """The rows of one TaskResult tree, parents before children."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, Route] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """Every task id of the tree."""
        return [row["id"] for row in self.tasks]


def _walk(root: TaskResult) -> Iterator[tuple[TaskResult, str | None, int]]:
    stack: list[tuple[TaskResult, str | None, int]] = [(root, None, 0)]
    while stack:
        node, parent, position = stack.pop()
        yield node, parent, position
        stack.extend((child, node.task_id, i) for i, child in reversed(list(enumerate(node.subtasks))))


def _task_values(result: TaskResult, parent_id: str | None, position: int) -> dict[str, Any]:
    return {
        "id": result.task_id,
        "text": result.text,
        "status": result.status.value,
        "agent": result.agent,
        "answer": result.answer,
        "error": result.error,
        "model": result.model,
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "model_calls": result.usage.model_calls,
        "timings": dict(result.timings),
        "tenant": result.principal.tenant,
        "user_name": result.principal.user,
        "parent_id": parent_id,
        "position": position,
    }


def _call_values(task_id: str, step_position: int, position: int, call: ToolCall) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "step_position": step_position,
        "position": position,
        "server": call.server,
        "tool": call.tool,
        "arguments": call.arguments,
        "result": truncate(call.result),
        "structured": call.structured,
        "is_error": call.is_error,
        "chosen_by": call.chosen_by,
        "duration_ms": call.duration_ms,
    }


def _add_steps(flat: FlatResult, task_id: str, steps: Sequence[Step]) -> None:
    for step_position, step in enumerate(steps):
        flat.steps.append(
            {
                "task_id": task_id,
                "position": step_position,
                "step_index": step.index,
                "kind": step.kind,
                "message": step.message,
                "duration_ms": step.duration_ms,
            }
        )
        flat.calls.extend(_call_values(task_id, step_position, i, call) for i, call in enumerate(step.tool_calls))


def flatten(result: TaskResult) -> FlatResult:
    """Return the rows that store ``result`` and its subtasks.

    The tree's derived outcomes (findings, changes, summary; see :mod:`mcphive.outcome`) are completed
    in place first, subtasks before their parents: they are not stored but rebuilt from the tool calls
    on reading, so a result reads back equal to the one recorded.

    Raises:
        UsageError: two tasks in the tree share an id.
    """
    flat = FlatResult()
    seen: set[str] = set()
    nodes = list(_walk(result))
    for node, _parent, _position in reversed(nodes):
        fill_outcome(node)
    for node, parent_id, position in nodes:
        if node.task_id in seen:
            raise UsageError(f"task id {node.task_id!r} occurs twice in the result tree; give every subtask its own id")
        seen.add(node.task_id)
        flat.tasks.append(_task_values(node, parent_id, position))
        if node.route is not None:
            flat.routes[node.task_id] = node.route
        _add_steps(flat, node.task_id, node.steps)
    return flat


def route_row(task_id: str, route: Route, at: datetime) -> dict[str, Any]:
    """Return the ``route_decisions`` row of ``route``."""
    return {
        "task_id": task_id,
        "agent": route.agent,
        "stage": route.stage,
        "confidence": route.confidence,
        "runners_up": [candidate.model_dump(mode="json") for candidate in route.runners_up],
        "reason": route.reason,
        "created_at": at,
    }


def _route(row: RouteDecisionRow) -> Route:
    return Route(
        agent=row.agent,
        confidence=row.confidence,
        stage=row.stage,  # only RouteStage values are ever written
        runners_up=[Candidate.model_validate(item) for item in row.runners_up],
        reason=row.reason,
    )


def _call(row: ToolCallRow) -> ToolCall:
    return ToolCall(
        server=row.server,
        tool=row.tool,
        arguments=row.arguments,
        result=row.result,
        structured=row.structured,
        is_error=row.is_error,
        chosen_by=row.chosen_by,  # only ChosenBy values are ever written
        duration_ms=row.duration_ms,
    )


def _steps(step_rows: Iterable[StepRow], call_rows: Iterable[ToolCallRow]) -> list[Step]:
    calls: dict[int, list[ToolCall]] = defaultdict(list)
    for call in call_rows:
        calls[call.step_position].append(_call(call))
    return [
        Step(
            index=row.step_index,
            kind=row.kind,  # only Step.kind values are ever written
            tool_calls=calls.get(row.position, []),
            message=row.message,
            duration_ms=row.duration_ms,
        )
        for row in step_rows
    ]


@dataclass
class TreeRows:
    """Every row of one task tree, grouped by task id, each group in stored order."""

    tasks: dict[str, TaskRow]
    children: dict[str, list[str]]
    routes: dict[str, RouteDecisionRow]
    steps: dict[str, list[StepRow]]
    calls: dict[str, list[ToolCallRow]]


def build_result(task_id: str, rows: TreeRows) -> TaskResult:
    """Rebuild the TaskResult of ``task_id`` (and its subtasks) from ``rows``, with its outcome derived."""
    row = rows.tasks[task_id]
    route = rows.routes.get(task_id)
    # Findings, changes and summary are derived from the stored tool calls, so they are not stored twice.
    return fill_outcome(
        TaskResult(
            task_id=row.id,
            text=row.text,
            status=TaskStatus(row.status),
            route=_route(route) if route is not None else None,
            agent=row.agent,
            steps=_steps(rows.steps.get(task_id, []), rows.calls.get(task_id, [])),
            answer=row.answer,
            error=row.error,
            usage=Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens, model_calls=row.model_calls),
            timings=row.timings,
            subtasks=[build_result(child, rows) for child in rows.children.get(task_id, [])],
            principal=Principal(tenant=row.tenant, user=row.user_name),
            model=row.model,
        )
    )
