"""The planner: compound requests become validated DAGs; plans run with briefs, in parallel where they can."""

import io
from pathlib import Path

import anyio
import pytest
from _writers import finisher_model
from rich.console import Console

from mcphive import Hive, ModelUnavailable, Settings, TaskStatus
from mcphive._report import render_result
from mcphive.agents.spec import load_specs
from mcphive.embeddings import get_embedder
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, ScriptedModel, tool_call
from mcphive.router.cascade import RoutingCascade
from mcphive.router.events import describe
from mcphive.router.planner import InvalidPlan, Planner, split_clauses, validate_plan
from mcphive.router.semantic import SemanticRouter
from mcphive.types import AGENT_NAMES, Plan, PlanStep

pytestmark = pytest.mark.anyio


def cascade() -> RoutingCascade:
    specs = load_specs()
    semantic = SemanticRouter({n: s.examples for n, s in specs.items()}, get_embedder())
    return RoutingCascade(list(specs), {n: s.rules for n, s in specs.items()}, semantic, threshold=0.35)


def planner() -> Planner:
    return Planner(cascade())


@pytest.mark.parametrize(
    ("text", "clauses"),
    [
        (
            "add caching to fetch_prices, test it, and document it",
            ["add caching to fetch_prices", "test it", "document it"],
        ),
        ("find unused imports and undefined names", ["find unused imports and undefined names"]),
        ("review the Dockerfile then update the README", ["review the Dockerfile", "update the README"]),
    ],
)
def test_clauses_split_only_where_a_new_action_starts(text: str, clauses: list[str]) -> None:
    assert split_clauses(text) == clauses


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "1 to 8 steps"),
        ([PlanStep(id="s1", agent="doc", goal="x")], "unknown agent 'doc'"),
        ([PlanStep(id="s1", agent="code", goal="x", depends_on=["s9"])], "unknown step(s) s9"),
        (
            [PlanStep(id="s1", agent="code", goal="x", depends_on=["s2"]),
             PlanStep(id="s2", agent="test", goal="y", depends_on=["s1"])],
            "cycle among steps s1, s2",
        ),
        ([PlanStep(id="s1", agent="code", goal="x"), PlanStep(id="s1", agent="test", goal="y")], "ids repeat"),
    ],
)  # fmt: skip
def test_invalid_plans_are_refused_with_the_reason(steps: list[PlanStep], message: str) -> None:
    with pytest.raises(InvalidPlan, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_plan(Plan(steps=steps), AGENT_NAMES)


async def test_the_template_routes_each_clause_and_chains_back_references() -> None:
    plan = await planner().from_template("add caching to fetch_prices, test it, and document it")
    assert plan is not None
    assert [(s.agent, s.depends_on) for s in plan.steps] == [("code", []), ("test", ["s1"]), ("docs", ["s2"])]


async def test_clauses_for_the_same_agent_stay_one_task() -> None:
    assert await planner().from_template("Run the test suite and explain the failure") is None


async def test_a_back_reference_the_router_is_unsure_of_stays_with_the_previous_step() -> None:
    # "harden it" alone is a near tie between infra and code; its object is the Dockerfile.
    routed = await cascade().route("harden it")
    assert routed.stage == "semantic" and routed.confidence < 0.6
    assert await planner().from_template("Review the Dockerfile and harden it") is None


async def test_a_model_plan_is_schema_constrained_and_validated() -> None:
    good = ScriptedModel(
        [tool_call("plan", steps=[{"agent": "code", "goal": "fix"}, {"agent": "test", "goal": "test", "after": [1]}])]
    )
    plan = await planner().from_model("fix and test", good)
    assert [(s.id, s.agent, s.depends_on) for s in plan.steps] == [("s1", "code", []), ("s2", "test", ["s1"])]
    schema = good.requests[0].tools[0].parameters["properties"]["steps"]["items"]["properties"]["agent"]
    assert schema["enum"] == list(AGENT_NAMES)
    cyclic = ScriptedModel(
        [
            tool_call(
                "plan",
                steps=[{"agent": "code", "goal": "a", "after": [2]}, {"agent": "test", "goal": "b", "after": [1]}],
            )
        ]
    )
    with pytest.raises(InvalidPlan, match="cycle"):
        await planner().from_model("x", cyclic)


async def test_a_compound_request_runs_as_subtasks_with_briefs_and_is_recorded(
    settings: Settings, sample_workspace: Path
) -> None:
    def reply(request: ChatRequest) -> ChatResponse | str:
        if request.tool_choice != "none":
            return tool_call("finish")
        task = next(m.content for m in request.messages if m.role == "user")
        return f"answer for: {task.splitlines()[0].removeprefix('Task: ')}"

    async with Hive.open(settings, model=FunctionModel(reply)) as hive:
        result = await hive.run("lint the code, run the tests and then document it", workspace=sample_workspace)
        single = await hive.run("lint the code", workspace=sample_workspace)
        recorded = await hive.memory.get(result.task_id)
        listed = {summary.id: summary.subtasks for summary in await hive.memory.recent(5)}
    assert listed == {result.task_id: 3, single.task_id: 0}  # `mcphive history` shows "plan (3)"
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert result.route is not None and result.route.stage == "plan" and result.agent is None
    assert [s.agent for s in result.subtasks] == ["code", "test", "docs"]
    docs_brief = result.subtasks[2].text
    assert docs_brief.startswith("document it") and "answer for: run the tests" in docs_brief  # its input's result
    assert result.usage.model_calls == sum(s.usage.model_calls for s in result.subtasks) > 0
    assert recorded is not None and [s.agent for s in recorded.subtasks] == ["code", "test", "docs"]
    # each step's route is how its clause alone was routed, not a blanket "explicit"
    routes = [s.route for s in result.subtasks]
    assert all(r is not None and r.stage in ("rule", "semantic") for r in routes), routes
    assert [r.agent for r in routes if r is not None] == ["code", "test", "docs"]


async def test_a_plans_report_shows_each_steps_tool_calls_and_all_their_findings(
    settings: Settings, sample_workspace: Path
) -> None:
    model = finisher_model()
    async with Hive.open(settings, model=model) as hive:
        result = await hive.run("lint the code and scan for leaked credentials", workspace=sample_workspace)
    console = Console(file=io.StringIO(), width=200, markup=False)
    render_result(result, console)
    report = console.file.getvalue()  # type: ignore[attr-defined]
    assert "plan: lint the code" in report.splitlines()[0]
    assert "out of scope" not in report and "route: plan of 2 subtasks" in report
    assert "s1 · code agent" in report and "s2 · security agent" in report
    assert "ruff_check" in report and "secret_scan" in report  # each step's survey calls
    # the findings table holds every step's findings (the plan itself made no tool call)
    secrets = [f for f in result.subtasks[1].findings if f.tool == "detect-secrets"]
    assert secrets and result.findings and f"findings ({len(result.findings)})" in report
    assert any(f"{f.file}:{f.line}" in report for f in secrets)


async def test_independent_subtasks_run_in_parallel(settings: Settings, sample_workspace: Path) -> None:
    both_inside = anyio.Event()
    inside = 0

    async def reply(request: ChatRequest) -> ChatResponse | str:
        nonlocal inside
        if request.tool_choice == "none":
            return "done"
        inside += 1
        if inside == 2:
            both_inside.set()
        await both_inside.wait()  # only returns once the other subtask is mid-run too
        return tool_call("finish")

    async with Hive.open(settings, model=FunctionModel(reply)) as hive:
        with anyio.fail_after(60):
            result = await hive.run("lint the code and scan for leaked credentials", workspace=sample_workspace)
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert [s.agent for s in result.subtasks] == ["code", "security"]


async def test_a_failed_step_skips_the_steps_that_depend_on_it(settings: Settings, sample_workspace: Path) -> None:
    def reply(request: ChatRequest) -> ChatResponse | str:
        task = next(m.content for m in request.messages if m.role == "user")
        if "lint" in task.splitlines()[0]:
            raise ModelUnavailable("model server at http://127.0.0.1:9 is not answering")
        return "done" if request.tool_choice == "none" else tool_call("finish")

    async with Hive.open(settings, model=FunctionModel(reply)) as hive:
        result = await hive.run("lint the code, then document it", workspace=sample_workspace)
    assert result.status is TaskStatus.FAILED
    assert [s.status for s in result.subtasks] == [TaskStatus.FAILED, TaskStatus.CANCELLED]
    assert result.subtasks[1].error is not None and "s1 did not succeed" in result.subtasks[1].error


async def test_planner_model_asks_the_model_when_the_template_does_not_split_and_records_its_plan(
    settings: Settings, sample_workspace: Path
) -> None:
    steps = [
        {"agent": "code", "goal": "tidy the pricing module"},
        {"agent": "test", "goal": "run the tests", "after": [1]},
    ]
    plans = 0

    def reply(request: ChatRequest) -> ChatResponse | str:
        nonlocal plans
        if request.tools and request.tools[0].name == "plan":
            plans += 1
            return tool_call("plan", steps=steps)
        return "done" if request.tool_choice == "none" else tool_call("finish")

    async with Hive.open(settings.model_copy(update={"planner": "model"}), model=FunctionModel(reply)) as hive:
        result = await hive.run("make the pricing code easier to maintain", workspace=sample_workspace)
        recorded = await hive.manager._d.ledger.recorded(result.task_id, "plan")  # type: ignore[union-attr]
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert [s.agent for s in result.subtasks] == ["code", "test"] and plans == 1
    assert result.subtasks[1].text.startswith("run the tests")  # briefed with the code step's outcome
    assert "s1 (code, succeeded" in result.subtasks[1].text
    assert result.usage.model_calls == 1 + sum(s.usage.model_calls for s in result.subtasks)  # planning counts
    # recorded, so a re-run of the task (its worker died) follows the same steps
    assert recorded is not None and recorded.structured is not None
    assert [s["agent"] for s in recorded.structured["plan"]["steps"]] == ["code", "test"]


async def test_a_model_plan_that_fails_validation_runs_the_request_as_one_task(
    settings: Settings, sample_workspace: Path
) -> None:
    def reply(request: ChatRequest) -> ChatResponse | str:
        if request.tools and request.tools[0].name == "plan":
            return tool_call(
                "plan",
                steps=[{"agent": "code", "goal": "a", "after": [2]}, {"agent": "test", "goal": "b", "after": [1]}],
            )
        return "done" if request.tool_choice == "none" else tool_call("finish")

    async with Hive.open(settings.model_copy(update={"planner": "model"}), model=FunctionModel(reply)) as hive:
        result = await hive.run("lint the code", workspace=sample_workspace)
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert result.subtasks == [] and result.agent == "code"  # the cycle was refused; the cascade routed it


async def test_a_plans_progress_says_which_step_each_line_belongs_to(
    settings: Settings, sample_workspace: Path
) -> None:
    model = finisher_model()
    async with Hive.open(settings, model=model) as hive:
        result = await hive.run("lint the code and scan for leaked credentials", workspace=sample_workspace)
        lines = [line for e in hive.events_so_far(result.task_id) if (line := describe(e))]
    assert lines[0] == "planned: s1 code, s2 security"
    assert "s1 · routed to code (rule)" in lines and "s2 · survey: secret_scan" in lines
    assert lines[-1] == "finished: succeeded"
