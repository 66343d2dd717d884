"""The shared data model: tasks, routes, steps, tool calls, usage and results.

Every layer speaks these types; they are plain pydantic models so that they serialise
to JSON unchanged for the CLI's ``--json`` output, the gateway's structured content and
the episodic memory.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AGENT_NAMES",
    "ApprovalDecision",
    "ApprovalRequest",
    "Candidate",
    "Change",
    "ChosenBy",
    "Event",
    "Finding",
    "Plan",
    "PlanStep",
    "Principal",
    "Priority",
    "Route",
    "RouteStage",
    "Step",
    "Task",
    "TaskResult",
    "TaskStatus",
    "ToolCall",
    "Usage",
    "new_id",
    "utcnow",
]

AGENT_NAMES: tuple[str, ...] = ("code", "docs", "test", "infra", "ops", "security")
"""The six built-in specialists, in the order the CLI lists them."""


def new_id() -> str:
    """Return a fresh, URL-safe task or record identifier."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Priority(StrEnum):
    """Priority classes, most urgent first."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for critical ... 3 for low; lower runs first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


class TaskStatus(StrEnum):
    """Lifecycle of a task; the last three are terminal.

    ``awaiting_approval``: the task wants to run a writing tool and waits, holding no worker, until someone
    approves or rejects the call (``Hive.approve`` / ``Hive.reject``).
    """

    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the task will never change again."""
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class Principal(_Model):
    """Who a record belongs to: the one notion of identity for isolation, quotas and auth."""

    tenant: str = "default"
    user: str = "local"


RouteStage = Literal["explicit", "correction", "rule", "semantic", "llm", "out_of_scope", "plan"]
ChosenBy = Literal["survey", "model"]


class Candidate(_Model):
    """One agent the router considered, with its score."""

    agent: str
    score: float


class Route(_Model):
    """The router's decision.

    ``agent`` is ``None`` when ``stage == "out_of_scope"`` (the router refuses to guess rather
    than send a task to the wrong specialist) and when ``stage == "plan"`` (a compound request
    split into subtasks, each with its own route).
    """

    agent: str | None
    confidence: float
    stage: RouteStage
    runners_up: list[Candidate] = Field(default_factory=list)
    reason: str = ""


class PlanStep(_Model):
    """One subtask of a plan: which agent, what goal, which steps it waits for."""

    id: str
    agent: str
    goal: str
    depends_on: list[str] = Field(default_factory=list)
    route: Route | None = None
    """How the router decided this step's agent on the clause alone (template plans); None from a model's plan."""

    def label(self) -> str:
        """``s2 test (after s1)``: the step as progress lines and ``mcphive route`` name it."""
        after = f" (after {', '.join(self.depends_on)})" if self.depends_on else ""
        return f"{self.id} {self.agent}{after}"


class Plan(_Model):
    """A DAG of subtasks for a compound request, validated before it runs."""

    steps: list[PlanStep]
    source: Literal["template", "model"] = "template"


class Task(_Model):
    """A unit of work submitted to the hive."""

    id: str = Field(default_factory=new_id)
    text: str
    workspace: str
    priority: Priority = Priority.NORMAL
    agent: str | None = None
    principal: Principal = Field(default_factory=Principal)
    created_at: datetime = Field(default_factory=utcnow)


class ToolCall(_Model):
    """One MCP tool call made by an agent, with who chose it."""

    server: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: str = ""
    structured: dict[str, Any] | None = None
    is_error: bool = False
    chosen_by: ChosenBy
    duration_ms: float = 0.0


class Finding(_Model):
    """One problem a tool found: where, which rule, how bad, and what to do."""

    file: str
    line: int | None = None
    rule: str
    severity: Literal["info", "low", "medium", "high", "critical"] = "medium"
    message: str
    fix: str | None = None
    tool: str = ""


class Change(_Model):
    """One file an agent created, modified or deleted, with a short summary of the edit."""

    path: str
    action: Literal["created", "modified", "deleted"] = "modified"
    summary: str = ""
    tool: str = ""


class Step(_Model):
    """One step of the agent loop: a survey tool pass, a model choice, or the final answer."""

    index: int
    kind: Literal["survey", "model", "final"]
    tool_calls: list[ToolCall] = Field(default_factory=list)
    message: str = ""
    duration_ms: float = 0.0


class Usage(_Model):
    """Token accounting for one model call or a whole task."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            model_calls=self.model_calls + other.model_calls,
        )


class TaskResult(_Model):
    """Everything a task produced: the route, each step and tool call, the answer and the costs."""

    task_id: str
    text: str
    status: TaskStatus
    route: Route | None = None
    agent: str | None = None
    steps: list[Step] = Field(default_factory=list)
    answer: str = ""
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    timings: dict[str, float] = Field(default_factory=dict)
    subtasks: list[TaskResult] = Field(default_factory=list)
    principal: Principal = Field(default_factory=Principal)
    model: str = ""
    findings: list[Finding] = Field(default_factory=list)
    """Every tool's findings, de-duplicated, most severe first (derived from the steps; see ``mcphive.outcome``)."""
    changes: list[Change] = Field(default_factory=list)
    """The files the agent's writing tools changed, in order."""
    summary: str = ""
    """A deterministic one-paragraph account of what the tools found and changed (``answer`` is the model's)."""

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call of every step, in order."""
        return [call for step in self.steps for call in step.tool_calls]


class Event(_Model):
    """A progress event: what the CLI's live display and ``Hive.events`` render."""

    task_id: str
    kind: Literal[
        "queued",
        "planned",
        "routed",
        "waiting",
        "started",
        "step",
        "tool_call",
        "model",
        "awaiting_approval",
        "finished",
    ]
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)


class ApprovalRequest(_Model):
    """A writing tool call a task waits to have approved: what it would run, and where in the task."""

    task_id: str
    call_key: str
    """The call's place in the task and a hash of server, tool and arguments (see ``agents.loop.call_key``)."""
    server: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime = Field(default_factory=utcnow)


class ApprovalDecision(_Model):
    """The answer to an :class:`ApprovalRequest`: approved or rejected, by whom, and why."""

    approved: bool
    by: str = ""
    reason: str = ""
