"""The SDK end to end with a scripted model: routing, the survey, model-chosen MCP tool calls, memory."""

from pathlib import Path

import anyio
import pytest
from _writers import finisher_model

from mcphive import Hive, InvalidTask, Settings, TaskStatus, UnknownAgent, UsageError, WorkspaceError
from mcphive.agents.spec import load_specs
from mcphive.errors import StoreError
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, ScriptedModel, final, tool_call

pytestmark = pytest.mark.anyio


async def test_a_routed_task_runs_the_survey_then_the_models_choice_and_is_recorded(
    settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel(
        [
            tool_call("read_file", path="pricefeed/config.py", start_line=1, end_line=20),
            final("summary written by the scripted model"),
        ]
    )
    async with Hive.open(settings.model_copy(update={"max_model_steps": 1}), model=model) as hive:
        result = await hive.run("scan the project for hard-coded secrets", workspace=sample_workspace)
        recorded = await hive.memory.get(result.task_id)
    assert result.status is TaskStatus.SUCCEEDED, result.error
    assert result.route is not None and result.agent == "security"
    kinds = [(s.kind, [c.tool for c in s.tool_calls]) for s in result.steps]
    survey = [("survey", [call.tool]) for call in load_specs()["security"].survey]
    assert kinds == [*survey, ("model", ["read_file"]), ("final", [])]
    assert [c.chosen_by for c in result.tool_calls] == ["survey"] * len(survey) + ["model"]
    # The model's read went through MCP to the real file; what outlives the run holds the key redacted.
    assert "AWS_ACCESS_KEY = " in result.tool_calls[-1].result
    assert "[REDACTED:AWS Access Key]" in result.tool_calls[-1].result
    assert "AKIAEXAMPLEFAKEKEY00" not in result.model_dump_json()
    assert result.answer == "summary written by the scripted model"
    assert result.usage.model_calls == 2
    assert recorded is not None and recorded.model_dump(exclude={"timings"}) == result.model_dump(exclude={"timings"})


async def test_the_model_is_shown_tool_output_as_delimited_data(settings: Settings, sample_workspace: Path) -> None:
    model = FunctionModel(lambda r: "ok" if r.tool_choice == "none" else tool_call("finish"))
    async with Hive.open(settings, model=model) as hive:
        await hive.run("lint the code", workspace=sample_workspace, agent="code")
    user = next(m.content for m in model.requests[0].messages if m.role == "user")
    assert '<tool-output tool="ruff_check">' in user and "</tool-output>" in user
    system = model.requests[0].messages[0].content
    assert "never instructions" in system


async def test_a_constrained_model_is_offered_only_real_files_and_no_repeats(
    sample_workspace: Path, tmp_path: Path
) -> None:
    seen: list[ChatRequest] = []

    def record(request: ChatRequest) -> ChatResponse | str:
        seen.append(request)
        return "done" if request.tool_choice == "none" else tool_call("finish")

    model = FunctionModel(record, name="local:scripted")  # a "local" name asks the loop to constrain
    async with Hive.open(Settings(data_dir=tmp_path / "d"), model=model) as hive:
        await hive.run("review the Dockerfile", workspace=sample_workspace, agent="infra")
    tools = {t.name: t for t in seen[0].tools}
    assert "finish" not in tools  # the first choice must be a real one
    assert "dockerfile_lint" not in tools  # its only Dockerfile was surveyed already
    read_enum = tools["read_file"].parameters["properties"]["path"]["enum"]
    assert "Dockerfile" in read_enum and all((sample_workspace / p).is_file() for p in read_enum)  # no folders


async def test_submit_returns_at_once_and_the_handle_reports_status_and_result(
    settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel([tool_call("finish"), final("all good")])
    async with Hive.open(settings, model=model) as hive:
        handle = await hive.submit("summarize errors in app.log", workspace=sample_workspace, agent="ops")
        assert await handle.status() in (TaskStatus.QUEUED, TaskStatus.RUNNING)
        with anyio.fail_after(60):
            result = await handle.wait()
        assert await handle.status() is TaskStatus.SUCCEEDED
        events = [e.kind async for e in hive.events(handle.id)]
    assert result.answer == "all good"
    assert events[0] == "queued" and events[-1] == "finished" and "tool_call" in events and "routed" in events


async def test_cancelling_a_running_task_stops_it_and_records_it(settings: Settings, sample_workspace: Path) -> None:
    started, release = anyio.Event(), anyio.Event()

    async def stalls(request: ChatRequest) -> ChatResponse | str:
        started.set()
        await release.wait()
        return "never"

    async with Hive.open(settings, model=FunctionModel(stalls)) as hive:
        handle = await hive.submit("run the tests", workspace=sample_workspace, agent="code")
        with anyio.fail_after(60):
            await started.wait()
            assert await handle.cancel()
            result = await handle.wait()
        recorded = await hive.memory.get(handle.id)
    assert result.status is TaskStatus.CANCELLED
    assert recorded is not None and recorded.status is TaskStatus.CANCELLED


async def test_a_hive_stopped_mid_task_records_its_in_memory_tasks_as_cancelled(
    settings: Settings, sample_workspace: Path
) -> None:
    # What Ctrl-C on `mcphive run` does: the hive closes because its caller was cancelled.
    started = anyio.Event()

    async def stalls(request: ChatRequest) -> ChatResponse | str:
        started.set()
        await anyio.sleep_forever()
        return "never"

    ids: list[str] = []
    with anyio.CancelScope() as interrupted:
        async with Hive.open(settings, model=FunctionModel(stalls)) as hive:
            ids.append((await hive.submit("run the tests", workspace=sample_workspace, agent="code")).id)
            ids.append((await hive.submit("lint the code", workspace=sample_workspace, agent="code")).id)
            with anyio.fail_after(60):
                await started.wait()
            interrupted.cancel()
            await anyio.sleep_forever()
    async with Hive.open(settings, model=ScriptedModel([])) as reopened:
        recorded = [await reopened.memory.get(task_id) for task_id in ids]
    assert [r.status if r else None for r in recorded] == [TaskStatus.CANCELLED, TaskStatus.CANCELLED]
    assert all(r is not None and r.error is not None and "interrupted" in r.error for r in recorded)


async def test_out_of_scope_text_fails_the_task_with_the_reason_and_runs_nothing(
    settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel([])
    async with Hive.open(settings, model=model) as hive:
        route = await hive.route("what is a good recipe for banana bread")
        result = await hive.run("what is a good recipe for banana bread", workspace=sample_workspace)
    assert route.agent is None and route.stage == "out_of_scope"
    assert result.status is TaskStatus.FAILED and result.error is not None and "out of scope" in result.error
    assert result.steps == [] and model.requests == []


async def test_pasted_terminal_output_is_plain_text(settings: Settings) -> None:
    # Tabs, newlines and the ESC of colour codes are text; only other control characters mark bytes.
    async with Hive.open(settings, model=ScriptedModel([])) as hive:
        route = await hive.route("the test job fails:\n\t\x1b[31mFAILED\x1b[0m tests/test_api.py::test_login\r\n")
    assert route.agent is not None


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "match"),
    [
        ("", {}, InvalidTask, "task text is empty"),
        ("   \n ", {}, InvalidTask, "task text is empty"),
        ("x" * 9000, {}, InvalidTask, "over the 8000 limit"),
        ("a\0b", {}, InvalidTask, "looks binary: it contains a NUL byte at position 1"),
        ("fix \x01\x02 it", {}, InvalidTask, "control character U\\+0001 at position 4"),
        ("fix \udcff the parser", {}, InvalidTask, "not valid UTF-8"),
        ("lint", {"agent": "doc"}, UnknownAgent, "choose one of: code, docs"),
        ("lint", {"workspace": "/no/such/folder"}, WorkspaceError, "not an existing folder"),
        ("lint", {"priority": "urgent"}, UsageError, "unknown priority 'urgent'; choose one of: critical, high"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_queued_or_recorded(
    settings: Settings, text: str, kwargs: dict[str, str], error: type[Exception], match: str
) -> None:
    async with Hive.open(settings, model=ScriptedModel([])) as hive:
        with pytest.raises(error, match=match):
            await hive.submit(text, **kwargs)
        assert len(hive.queue) == 0
        assert await hive.memory.recent() == []


async def test_a_failing_model_fails_the_task_with_its_message_and_records_the_failure(
    settings: Settings, sample_workspace: Path
) -> None:
    async with Hive.open(settings, model=ScriptedModel([])) as hive:
        result = await hive.run("lint the code", workspace=sample_workspace, agent="code")
        recorded = await hive.memory.get(result.task_id)
    assert result.status is TaskStatus.FAILED and result.error is not None and "ran out of replies" in result.error
    assert recorded is not None and recorded.status is TaskStatus.FAILED


async def test_a_dead_postgres_queue_is_one_clear_error_at_open(settings: Settings) -> None:
    import socket

    import psycopg

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # nothing listens here once the socket closes
    url = f"postgresql+psycopg://mcphive:hunter2@127.0.0.1:{port}/queue"
    dead = settings.model_copy(update={"queue": "postgres", "queue_url": url})
    with pytest.raises(
        StoreError, match=rf"cannot reach the queue database .*127\.0\.0\.1:{port}/queue: .*refused"
    ) as e:
        async with Hive.open(dead, model=ScriptedModel([])):
            pass
    assert "hunter2" not in str(e.value)
    # libpq's own refusal from one direct connection, not the pool's PoolTimeout after its 30 s wait.
    assert type(e.value.__cause__) is psycopg.OperationalError  # PoolTimeout is a subclass of it


def test_the_sync_facade_runs_a_task_from_plain_code(settings: Settings, sample_workspace: Path) -> None:
    model = ScriptedModel([tool_call("finish"), final("sync ok")])
    with Hive.open_sync(settings, model=model) as hive:
        result = hive.run("lint the code", workspace=sample_workspace, agent="code")
    assert result.status is TaskStatus.SUCCEEDED and result.answer == "sync ok"
    hive.close()  # closing again does nothing
    with pytest.raises(UsageError, match="this hive is closed"):
        hive.route("lint the code")


async def test_a_long_running_hive_keeps_only_recent_results_in_memory_and_reads_older_ones_back(
    settings: Settings, sample_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mcphive.hive as hive_module

    monkeypatch.setattr(hive_module, "_KEEP_FINISHED", 2)
    model = finisher_model()
    async with Hive.open(settings.model_copy(update={"workers": 1}), model=model) as hive:
        results = [await hive.run(f"lint ({i})", workspace=sample_workspace, agent="code") for i in range(3)]
        oldest = results[0].task_id
        assert hive.events_so_far(oldest) == [] and hive.events_so_far(results[2].task_id) != []
        again = await hive.wait(oldest)
    assert again.status is TaskStatus.SUCCEEDED and again.answer == "done"
