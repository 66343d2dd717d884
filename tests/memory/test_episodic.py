"""Recording tasks and results, and reading them back: round trips, atomicity, listing and search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _pg import pg_bin_dir, postgres_cluster
from sqlalchemy import func, select

from mcphive.errors import StoreError, UsageError
from mcphive.memory import RESULT_CAP, EpisodicMemory
from mcphive.memory._tables import StepRow, TaskRow, ToolCallRow
from mcphive.types import (
    Candidate,
    Principal,
    Priority,
    Route,
    Step,
    Task,
    TaskResult,
    TaskStatus,
    ToolCall,
    Usage,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _result(task: Task, *, answer: str = "the parser test depends on dict order") -> TaskResult:
    survey = Step(
        index=0,
        kind="survey",
        duration_ms=12.5,
        tool_calls=[
            ToolCall(
                server="workspace",
                tool="grep",
                arguments={"pattern": "def test_", "paths": ["tests/"]},
                result="tests/test_parser.py:3: def test_parse",
                structured={"matches": [{"file": "tests/test_parser.py", "line": 3}], "truncated": False},
                chosen_by="survey",
                duration_ms=3.25,
            ),
            ToolCall(server="workspace", tool="run_tests", result="1 failed", is_error=True, chosen_by="survey"),
        ],
    )
    chosen = Step(
        index=1,
        kind="model",
        tool_calls=[ToolCall(server="workspace", tool="read_file", arguments={"path": "a.py"}, chosen_by="model")],
    )
    final = Step(index=2, kind="final", message="wrote the summary")
    return TaskResult(
        task_id=task.id,
        text=task.text,
        status=TaskStatus.SUCCEEDED,
        route=Route(
            agent="test",
            confidence=0.81,
            stage="semantic",
            runners_up=[Candidate(agent="code", score=0.44), Candidate(agent="docs", score=0.1)],
            reason="closest to the test examples",
        ),
        agent="test",
        steps=[survey, chosen, final],
        answer=answer,
        usage=Usage(input_tokens=120, output_tokens=45, model_calls=2),
        timings={"route_ms": 1.5, "total_ms": 250.0},
        principal=task.principal,
        model="scripted",
    )


def _task(text: str = "why does the parser test fail?", **kwargs: object) -> Task:
    return Task(text=text, workspace="/srv/repo", **kwargs)  # type: ignore[arg-type]


def _count(memory: EpisodicMemory, table: type[TaskRow] | type[StepRow] | type[ToolCallRow]) -> int:
    with memory.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


async def test_a_recorded_result_reads_back_equal_with_steps_tool_calls_and_subtasks(memory: EpisodicMemory) -> None:
    task = _task()
    await memory.record_task(task)
    result = _result(task)
    result.subtasks = [
        TaskResult(task_id=f"{task.id}-a", text="first half", status=TaskStatus.SUCCEEDED, agent="code", answer="ok"),
        TaskResult(
            task_id=f"{task.id}-b",
            text="second half",
            status=TaskStatus.FAILED,
            error="tool crashed",
            steps=[Step(index=0, kind="survey", tool_calls=[ToolCall(server="s", tool="t", chosen_by="survey")])],
            subtasks=[TaskResult(task_id=f"{task.id}-b1", text="nested", status=TaskStatus.CANCELLED)],
        ),
    ]

    await memory.record_result(result)

    assert await memory.get(task.id) == result
    assert await memory.get(f"{task.id}-b") == result.subtasks[1]


async def test_recording_the_same_result_twice_stores_its_steps_once(memory: EpisodicMemory) -> None:
    task = _task()
    await memory.record_task(task)
    result = _result(task)

    await memory.record_result(result)
    await memory.record_result(result)

    assert await memory.get(task.id) == result
    assert _count(memory, ToolCallRow) == len(result.tool_calls)


async def test_a_result_for_a_task_never_recorded_is_stored_whole(memory: EpisodicMemory) -> None:
    result = _result(_task())

    await memory.record_result(result)

    assert await memory.get(result.task_id) == result


async def test_get_returns_none_for_an_unknown_task(memory: EpisodicMemory) -> None:
    assert await memory.get("no-such-task") is None


@pytest.mark.parametrize(
    "bad_call",
    [
        # chosen_by is NOT NULL in the table: the database rejects this row.
        ToolCall.model_construct(
            server="workspace",
            tool="ls",
            arguments={},
            result="",
            structured=None,
            is_error=False,
            chosen_by=None,
            duration_ms=0.0,
        ),
        # Not JSON-serialisable: the row fails while being written.
        ToolCall(server="workspace", tool="ls", arguments={"handle": object()}, chosen_by="model"),
    ],
    ids=["constraint-violation", "unserialisable-arguments"],
)
async def test_a_failing_tool_call_row_leaves_nothing_of_the_result_behind(
    memory: EpisodicMemory, bad_call: ToolCall
) -> None:
    task = _task()
    await memory.record_task(task)
    result = _result(task)
    result.subtasks = [TaskResult(task_id=f"{task.id}-sub", text="part", status=TaskStatus.SUCCEEDED)]
    result.steps[0].tool_calls.insert(1, bad_call)

    with pytest.raises(StoreError, match="could not record the result of task"):
        await memory.record_result(result)

    stored = await memory.get(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.QUEUED
    assert stored.steps == [] and stored.route is None and stored.subtasks == [] and stored.answer == ""
    assert (_count(memory, TaskRow), _count(memory, StepRow), _count(memory, ToolCallRow)) == (1, 0, 0)


async def test_a_failed_rerecording_keeps_the_earlier_result_intact(memory: EpisodicMemory) -> None:
    task = _task()
    good = _result(task)
    await memory.record_result(good)
    bad = _result(task, answer="a different answer")
    bad.steps[1].tool_calls.append(ToolCall(server="s", tool="t", arguments={"x": object()}, chosen_by="model"))

    with pytest.raises(StoreError):
        await memory.record_result(bad)

    assert await memory.get(task.id) == good


async def test_a_result_tree_reusing_a_task_id_is_refused(memory: EpisodicMemory) -> None:
    result = _result(_task())
    result.subtasks = [TaskResult(task_id=result.task_id, text="loop", status=TaskStatus.SUCCEEDED)]

    with pytest.raises(UsageError, match="occurs twice"):
        await memory.record_result(result)


async def test_overlong_tool_results_are_truncated_with_a_marker(memory: EpisodicMemory) -> None:
    result = _result(_task())
    result.steps[0].tool_calls[0].result = "x" * (RESULT_CAP + 10)

    await memory.record_result(result)

    stored = await memory.get(result.task_id)
    assert stored is not None
    text = stored.steps[0].tool_calls[0].result
    assert text.startswith("x" * RESULT_CAP) and text.endswith("truncated by mcphive memory: 10 more characters]")


async def test_record_task_twice_keeps_the_first_record(memory: EpisodicMemory) -> None:
    task = _task(priority=Priority.HIGH, agent="code")
    await memory.record_task(task, TaskStatus.RUNNING)

    await memory.record_task(task.model_copy(update={"text": "changed"}))

    [summary] = await memory.recent()
    assert (summary.text, summary.status, summary.agent) == (task.text, TaskStatus.RUNNING, "code")


async def test_status_changes_stamp_start_and_finish_and_keep_the_error(memory: EpisodicMemory) -> None:
    task = _task()
    await memory.record_task(task)
    await memory.set_status(task.id, TaskStatus.RUNNING)
    [running] = await memory.recent()
    assert running.status is TaskStatus.RUNNING and running.duration_s is None

    await memory.set_status(task.id, TaskStatus.FAILED, error="model unavailable")

    [failed] = await memory.recent()
    stored = await memory.get(task.id)
    assert failed.status is TaskStatus.FAILED and failed.duration_s is not None and failed.duration_s >= 0
    assert stored is not None and stored.error == "model unavailable"


async def test_routes_and_statuses_of_unknown_tasks_are_usage_errors(memory: EpisodicMemory) -> None:
    with pytest.raises(UsageError, match="no task 'ghost'"):
        await memory.set_status("ghost", TaskStatus.RUNNING)
    with pytest.raises(UsageError, match="no task 'ghost'"):
        await memory.record_route("ghost", Route(agent=None, confidence=0.1, stage="out_of_scope"))


async def test_the_newest_route_decision_is_the_tasks_route_and_a_result_does_not_override_it(
    memory: EpisodicMemory,
) -> None:
    task = _task()
    await memory.record_task(task)
    await memory.record_route(task.id, Route(agent="code", confidence=0.4, stage="semantic"))
    decided = Route(agent="test", confidence=1.0, stage="explicit", reason="user asked")
    await memory.record_route(task.id, decided)

    await memory.record_result(_result(task))

    stored = await memory.get(task.id)
    assert stored is not None and stored.route == decided


async def test_recent_lists_newest_first_and_only_the_principals_tasks(memory: EpisodicMemory) -> None:
    alice, bob = Principal(tenant="acme", user="alice"), Principal(tenant="acme", user="bob")
    tasks = [
        _task("oldest", principal=alice, created_at=T0),
        _task("bob's", principal=bob, created_at=T0 + timedelta(minutes=1)),
        _task("newest", principal=alice, created_at=T0 + timedelta(minutes=2)),
        _task("middle", principal=alice, created_at=T0 + timedelta(seconds=30)),
    ]
    for task in tasks:
        await memory.record_task(task)

    everyone = await memory.recent()
    mine = await memory.recent(principal=alice)
    two = await memory.recent(2, principal=alice)

    assert [s.text for s in everyone] == ["newest", "bob's", "middle", "oldest"]
    assert [s.text for s in mine] == ["newest", "middle", "oldest"]
    assert [s.text for s in two] == ["newest", "middle"]
    assert everyone[0].created_at == T0 + timedelta(minutes=2)


async def test_recent_lists_tasks_not_their_subtasks(memory: EpisodicMemory) -> None:
    result = _result(_task())
    result.subtasks = [TaskResult(task_id="child", text="part", status=TaskStatus.SUCCEEDED)]
    await memory.record_result(result)

    assert [s.id for s in await memory.recent()] == [result.task_id]


async def test_recall_ranks_by_matching_words_then_recency(memory: EpisodicMemory) -> None:
    texts = {
        "parser only": ("Fix the PARSER crash", T0),
        "both old": ("flaky parser test", T0 + timedelta(minutes=1)),
        "both new": ("investigate parser", T0 + timedelta(minutes=2)),
        "unrelated": ("rotate the TLS certificates", T0 + timedelta(minutes=3)),
    }
    answers = {"both new": "it was a flaky timeout"}
    for name, (text, at) in texts.items():
        task = _task(text, created_at=at)
        await memory.record_task(task)
        await memory.record_result(_result(task, answer=answers.get(name, "")))

    found = await memory.recall("Flaky parser?")

    assert [s.text for s in found] == ["investigate parser", "flaky parser test", "Fix the PARSER crash"]
    assert [s.text for s in await memory.recall("flaky parser", limit=1)] == ["investigate parser"]
    assert await memory.recall("kubernetes") == []


async def test_recall_treats_like_wildcards_as_plain_text_and_respects_the_principal(memory: EpisodicMemory) -> None:
    other = Principal(tenant="other")
    await memory.record_task(_task("coverage at 100% please"))
    await memory.record_task(_task("raise coverage to 90 percent"))
    await memory.record_task(_task("coverage at 100% for them", principal=other))

    found = await memory.recall("100%", principal=Principal())

    assert [s.text for s in found] == ["coverage at 100% please"]
    assert await memory.recall("a % _") == []


async def test_resolve_id_expands_a_unique_prefix_and_explains_unknown_and_ambiguous_ones(
    memory: EpisodicMemory,
) -> None:
    for task_id in ("abc123", "abd456", "abd789"):
        await memory.record_task(Task(id=task_id, text="t", workspace="/w"))

    assert await memory.resolve_id("abc") == "abc123"
    assert await memory.resolve_id("abd456") == "abd456"
    with pytest.raises(UsageError, match=r"no task with id starting 'zz'; run `mcphive history` to list tasks"):
        await memory.resolve_id("zz")
    with pytest.raises(UsageError, match=r"'abd' is ambiguous \(matches abd456, abd789\)"):
        await memory.resolve_id("abd")
    with pytest.raises(UsageError, match="no task with id starting '_b'"):
        await memory.resolve_id("_b")


async def test_on_postgresql_the_hot_writes_behave_as_on_sqlite() -> None:
    """record_task (ON CONFLICT), set_status and record_result (re-recorded) on the other dialect."""
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set MCPHIVE_PG_BIN")
    with postgres_cluster() as url:
        memory = EpisodicMemory.open(url)
        try:
            task = _task(priority=Priority.HIGH, agent="code")
            await memory.record_task(task)
            await memory.record_task(task.model_copy(update={"text": "changed"}))
            await memory.set_status(task.id, TaskStatus.RUNNING)
            result = _result(task)
            result.subtasks = [
                TaskResult(task_id=f"{task.id}-a", text="half", status=TaskStatus.SUCCEEDED, agent="docs", answer="ok")
            ]
            await memory.record_result(result)
            await memory.record_result(result)
            with pytest.raises(UsageError, match="record_task"):
                await memory.set_status("no-such-task", TaskStatus.FAILED, error="gone")

            stored = await memory.get(task.id)
            [summary] = await memory.recent()
            calls = _count(memory, ToolCallRow)
        finally:
            memory.close()

    assert stored == result
    assert (summary.text, summary.status) == (task.text, TaskStatus.SUCCEEDED)
    assert calls == len(result.tool_calls)
