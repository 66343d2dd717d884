"""The planner: a compound request becomes a validated DAG of single-agent subtasks.

Two sources, one validation:

* **templates** — the common shape "do X, test it, and document it": the request is split into
  clauses at commas, semicolons, "and" and "then" where the next clause starts with an action
  verb; each clause is routed on its own; a clause that refers back ("it", "them", "this") waits
  for the clause before it, the others run in parallel.
* **the model** — asked for a plan as JSON constrained by a schema (agents as an enum, bounded
  goals), for requests the templates do not split.

A plan is validated before it runs: known agents, bounded size, no cycles, no unknown dependencies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from mcphive.errors import UsageError
from mcphive.inference.base import ChatMessage, ChatModel, ChatRequest, ToolSpec
from mcphive.router.cascade import RoutingCascade
from mcphive.types import Plan, PlanStep, Usage

__all__ = ["InvalidPlan", "Planner", "split_clauses", "validate_plan"]

MAX_PLAN_STEPS = 8

_VERBS = (
    "add|analy[sz]e|audit|build|check|clean|create|deploy|document|explain|find|fix|generate|harden|implement|"
    "investigate|lint|measure|migrate|pin|refactor|remove|rename|review|rotate|run|scan|summari[sz]e|test|"
    "update|verify|write"
)
_SPLIT = re.compile(
    rf"(?:\s*[,;]\s*(?:and\s+|then\s+|and\s+then\s+)?|\s+and\s+then\s+|\s+then\s+|\s+and\s+)(?=(?:{_VERBS})\b)", re.I
)
_BACK_REFERENCE = re.compile(r"\b(it|its|them|this|that|these|those|the (?:change|fix|result|failure)s?)\b", re.I)
# A clause that points back ("harden it") has the previous clause's object; when the router is unsure of it on
# its own words alone (a semantic probability below this), it belongs to the previous step's agent.
_UNSURE = 0.6


class InvalidPlan(UsageError):
    """A plan that cannot run: a cycle, an unknown agent or dependency, or too many steps."""


def split_clauses(text: str) -> list[str]:
    """The request's clauses, each starting with an action verb (one clause when it is not compound)."""
    clauses = [c.strip(" .,;") for c in _SPLIT.split(text.strip())]
    return [c for c in clauses if c]


def validate_plan(plan: Plan, agents: Sequence[str], *, max_steps: int = MAX_PLAN_STEPS) -> Plan:
    """Return ``plan`` if it can run.

    Raises:
        InvalidPlan: empty or over ``max_steps``, a duplicate id, an unknown agent or dependency, or a cycle.
    """
    if not plan.steps or len(plan.steps) > max_steps:
        raise InvalidPlan(f"a plan needs 1 to {max_steps} steps, not {len(plan.steps)}; split the request")
    ids = [step.id for step in plan.steps]
    if len(set(ids)) != len(ids):
        raise InvalidPlan(f"plan step ids repeat ({', '.join(ids)}); give each step its own id")
    for step in plan.steps:
        if step.agent not in agents:
            raise InvalidPlan(
                f"plan step {step.id} names unknown agent {step.agent!r}; choose one of: {', '.join(agents)}"
            )
        unknown = [d for d in step.depends_on if d not in ids]
        if unknown:
            raise InvalidPlan(f"plan step {step.id} depends on unknown step(s) {', '.join(unknown)}")
    order = _topological(plan)
    if len(order) != len(plan.steps):
        stuck = sorted(set(ids) - set(order))
        raise InvalidPlan(f"plan has a dependency cycle among steps {', '.join(stuck)}; remove one dependency")
    return plan


def _topological(plan: Plan) -> list[str]:
    waiting = {step.id: set(step.depends_on) for step in plan.steps}
    order: list[str] = []
    ready = [sid for sid, deps in waiting.items() if not deps]
    while ready:
        sid = ready.pop(0)
        order.append(sid)
        for other, deps in waiting.items():
            if sid in deps:
                deps.discard(sid)
                if not deps and other not in order and other not in ready:
                    ready.append(other)
    return order


class Planner:
    """Turns request text into a plan, or says it is a single task (``None``)."""

    def __init__(self, cascade: RoutingCascade, *, max_steps: int = MAX_PLAN_STEPS, use_model: bool = False) -> None:
        self._cascade = cascade
        self._max_steps = max_steps
        self.use_model = use_model
        """Ask the model for a plan when the template does not split a request (``planner = "model"``)."""

    def asks_model(self, text: str) -> bool:
        """Whether a request the template left whole goes to the model: with ``use_model``, unless a user
        corrected it to one agent (``route --correct``), which keeps it one task as :meth:`from_template` does."""
        return self.use_model and self._cascade.corrected(text) is None

    async def from_template(self, text: str) -> Plan | None:
        """A plan from the clause template, or None when the request is one task or a clause is out of scope.

        A request a user corrected to one agent (``route --correct``) is one task for that agent.
        """
        if self._cascade.corrected(text) is not None:
            return None
        clauses = split_clauses(text)
        if len(clauses) < 2:
            return None
        steps: list[PlanStep] = []
        for clause in clauses:
            route = await self._cascade.route(clause)
            if route.agent is None:
                return None  # a clause nobody can take: treat the request as one task, not a bad plan
            refers_back = bool(steps) and _BACK_REFERENCE.search(clause) is not None
            unsure = route.stage == "semantic" and route.confidence < _UNSURE
            if steps and (steps[-1].agent == route.agent or (refers_back and unsure)):
                # "run the tests and explain the failure" is one job for one specialist, not two; so is
                # "review the Dockerfile and harden it".
                steps[-1].goal = f"{steps[-1].goal} and {clause}"
                continue
            depends = [steps[-1].id] if refers_back else []
            steps.append(
                PlanStep(id=f"s{len(steps) + 1}", agent=route.agent, goal=clause, depends_on=depends, route=route)
            )
        if len(steps) < 2:
            return None
        return validate_plan(Plan(steps=steps, source="template"), self._cascade.agents, max_steps=self._max_steps)

    async def from_model(self, text: str, model: ChatModel) -> Plan:
        """Ask ``model`` for a plan as schema-constrained JSON, then validate it.

        Raises:
            InvalidPlan: the model's plan is not valid JSON or fails validation.
        """
        plan, _usage = await self.plan_with_model(text, model)
        return plan

    async def plan_with_model(self, text: str, model: ChatModel) -> tuple[Plan, Usage]:
        """:meth:`from_model`, with the tokens the model call took (a task's budget and usage count them).

        Raises:
            InvalidPlan: the model's plan is not valid JSON or fails validation.
        """
        request = ChatRequest(
            messages=[
                ChatMessage(role="system", content=_PLANNER_PROMPT.format(agents=", ".join(self._cascade.agents))),
                ChatMessage(role="user", content=text),
            ],
            tools=[_plan_tool(self._cascade.agents, self._max_steps)],
            tool_choice="required",
            max_tokens=400,
        )
        response = await model.chat(request)
        usage = response.usage
        calls = response.message.tool_calls
        if not calls:
            raise InvalidPlan(f"the model returned no plan ({response.message.content[:120]!r}); retry or plan by hand")
        try:
            raw = calls[0].arguments["steps"]
            steps = [PlanStep(id=f"s{i + 1}", agent=s["agent"], goal=s["goal"],
                              depends_on=[f"s{d}" for d in s.get("after", [])]) for i, s in enumerate(raw)]  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidPlan(f"the model's plan is malformed ({json.dumps(calls[0].arguments)[:200]})") from e
        plan = validate_plan(Plan(steps=steps, source="model"), self._cascade.agents, max_steps=self._max_steps)
        return plan, usage


_PLANNER_PROMPT = (
    "Split the engineering request into at most a few subtasks, each for one agent ({agents}). "
    "A subtask that needs another's result lists that subtask's number in 'after'."
)


def _plan_tool(agents: Sequence[str], max_steps: int) -> ToolSpec:
    step = {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "enum": list(agents)},
            "goal": {"type": "string", "maxLength": 200},
            "after": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": max_steps}},
        },
        "required": ["agent", "goal"],
    }
    return ToolSpec(
        name="plan",
        description="The plan: an ordered list of subtasks.",
        parameters={
            "type": "object",
            "properties": {"steps": {"type": "array", "items": step, "minItems": 1, "maxItems": max_steps}},
            "required": ["steps"],
        },
    )
