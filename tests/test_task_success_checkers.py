"""The task-success benchmark's checkers, on known-good and known-bad workspaces and results (no model).

The checkers decide whether an end-to-end task succeeded, so each must fail on the untouched
example project and pass once the problem is really fixed or really reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _benchmarks import load_benchmark

from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import all_tools
from mcphive.sample import copy_sample_project, load_manifest
from mcphive.types import AGENT_NAMES, Step, TaskResult, TaskStatus, ToolCall

bench = load_benchmark("task_success")
TASKS = {t.id: t for t in bench.load_tasks()}


def result_of(*calls: ToolCall, answer: str = "", subtasks: list[TaskResult] | None = None) -> dict[str, Any]:
    """A result shaped exactly as ``mcphive run --json`` prints it."""
    result = TaskResult(
        task_id="t1",
        text="a task",
        status=TaskStatus.SUCCEEDED,
        agent="security",
        steps=[Step(index=i, kind="survey", tool_calls=[c]) for i, c in enumerate(calls)],
        answer=answer,
        subtasks=subtasks or [],
    )
    data: dict[str, Any] = result.model_dump(mode="json")
    return data


def tool_call(name: str, workspace: Path) -> ToolCall:
    """A survey call of the real workspace tool ``name`` on ``workspace``."""
    tool = {t.name: t for t in all_tools()}[name]
    structured = tool.fn(Jail(workspace))
    return ToolCall(server="workspace", tool=name, structured=structured, result=structured["summary"],
                    chosen_by="survey")  # fmt: skip


def fails(kind: str, workspace: Path, result: dict[str, Any] | None = None, **check: Any) -> str | None:
    return bench.CHECKS[kind]({"kind": kind, **check}, workspace, result or result_of())


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return copy_sample_project(tmp_path / "sample_project")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# ---------------------------------------------------------------- the task list


def test_the_task_list_is_thirty_or_more_tasks_over_all_six_agents_and_every_kind() -> None:
    assert len(TASKS) >= 30
    assert {t.agent for t in TASKS.values()} == set(AGENT_NAMES)
    assert {t.kind for t in TASKS.values()} == set(bench.KINDS)
    assert all(sum(t.agent == a for t in TASKS.values()) >= 5 for a in AGENT_NAMES)


def test_no_task_succeeds_on_the_untouched_project_with_an_empty_result(workspace: Path) -> None:
    for task in TASKS.values():
        assert bench.judge(task, workspace, result_of()), f"{task.id} passes without any work"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('[[task]]\nid="a"\nagent="cook"\nkind="report"\ntext="x"\ncheck=[{kind="planted", ids=[]}]', "unknown agent"),
        ('[[task]]\nid="a"\nagent="code"\nkind="report"\ntext="x"\ncheck=[{kind="vibes"}]', "unknown check kind"),
        ('[[task]]\nid="a"\nagent="code"\nkind="report"\ntext="x"\ncheck=[{kind="planted", ids=["nope"]}]', "nope"),
        ('[[task]]\nid="a"\nagent="code"\nkind="edit"\ntext="x"\ncheck=[{kind="docstring", file="a.py"}]', "symbol"),
    ],
)
def test_a_bad_task_list_is_refused_with_the_reason(tmp_path: Path, body: str, complaint: str) -> None:
    path = tmp_path / "tasks.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=complaint):
        bench.load_tasks(path)


# ---------------------------------------------------------------- checks on results


def test_planted_passes_on_the_real_tools_findings_and_fails_without_them(workspace: Path) -> None:
    check = {"ids": ["security-aws-key", "security-db-password"]}
    scanned = result_of(tool_call("secret_scan", workspace))
    assert fails("planted", workspace, scanned, **check) is None
    assert "security-db-password" in (fails("planted", workspace, result_of(), **check) or "")
    # A finding of the right rule in another file, or at another line, is not the planted problem.
    moved = scanned["steps"][0]["tool_calls"][0]["structured"]["findings"]
    for finding in moved:
        finding["line"] = 99
    assert fails("planted", workspace, scanned, **check) is not None


def test_planted_finds_findings_reported_by_a_subtask(workspace: Path) -> None:
    child = TaskResult.model_validate(result_of(tool_call("bandit_scan", workspace)))
    plan = result_of(subtasks=[child, child.model_copy(update={"agent": "docs"})])
    plan["agent"] = None
    assert fails("planted", workspace, plan, ids=["security-pickle-loads"]) is None
    assert bench.routed_to(plan) == "security+docs"


def test_not_leaked_passes_on_redacted_findings_and_fails_on_a_raw_secret(workspace: Path) -> None:
    secret = "AKIAEXAMPLEFAKEKEY00"
    assert fails("not_leaked", workspace, result_of(tool_call("secret_scan", workspace)), secret=secret) is None
    assert fails("not_leaked", workspace, result_of(answer=f"the key is {secret}"), secret=secret) is not None


def test_answer_mentions_is_case_insensitive_and_needs_one_of_the_strings(workspace: Path) -> None:
    check = {"any": ["parse_quote"]}
    assert fails("answer_mentions", workspace, result_of(answer="PARSE_QUOTE is never defined"), **check) is None
    assert fails("answer_mentions", workspace, result_of(answer="the cache is fine"), **check) is not None


def test_tool_result_needs_a_successful_call_that_mentions_the_text(workspace: Path) -> None:
    check = {"tool": "api_reference", "contains": "apply_discount"}
    good = ToolCall(server="workspace", tool="api_reference", result="## apply_discount(...)", chosen_by="model")
    broken = good.model_copy(update={"is_error": True})
    assert fails("tool_result", workspace, result_of(good), **check) is None
    assert "never called" in (fails("tool_result", workspace, result_of(), **check) or "")
    assert fails("tool_result", workspace, result_of(broken), **check) is not None


# ---------------------------------------------------------------- checks on the workspace


def test_pytest_fails_on_the_planted_bug_and_passes_once_it_is_fixed(workspace: Path) -> None:
    assert "exited 1" in (fails("pytest", workspace, paths=["tests/test_pricing.py"]) or "")
    edit(workspace / "pricefeed/pricing.py", "quantity > BULK_THRESHOLD", "quantity >= BULK_THRESHOLD")
    assert fails("pytest", workspace, paths=["tests"]) is None


def test_docstring_checks_functions_and_methods(workspace: Path) -> None:
    assert fails("docstring", workspace, file="pricefeed/pricing.py", symbol="convert") is not None
    assert fails("docstring", workspace, file="pricefeed/cache.py", symbol="PriceCache.get") is not None
    assert fails("docstring", workspace, file="pricefeed/cache.py", symbol="PriceCache.put") is None
    edit(workspace / "pricefeed/pricing.py", "    return round_price(amount * rate)",
         '    """Convert ``amount`` at ``rate``."""\n    return round_price(amount * rate)')  # fmt: skip
    assert fails("docstring", workspace, file="pricefeed/pricing.py", symbol="convert") is None
    assert "no longer defined" in (fails("docstring", workspace, file="pricefeed/pricing.py", symbol="gone") or "")


def test_a_file_left_unparsable_fails_every_syntax_check(workspace: Path) -> None:
    (workspace / "pricefeed/cache.py").write_text("def broken(:\n", encoding="utf-8")
    for kind, check in [
        ("docstring", {"symbol": "PriceCache"}),
        ("no_import", {"module": "os"}),
        ("no_mutable_default", {"symbol": "PriceCache.warm"}),
    ]:
        assert "no longer valid Python" in (fails(kind, workspace, file="pricefeed/cache.py", **check) or "")


def test_no_import_fails_while_the_module_is_imported(workspace: Path) -> None:
    assert "line 3" in (fails("no_import", workspace, file="pricefeed/cache.py", module="os") or "")
    edit(workspace / "pricefeed/cache.py", "import os\n", "")
    assert fails("no_import", workspace, file="pricefeed/cache.py", module="os") is None
    assert fails("no_import", workspace, file="pricefeed/cache.py", module="time") is not None


def test_no_mutable_default_passes_once_the_default_is_none(workspace: Path) -> None:
    check = {"file": "pricefeed/cache.py", "symbol": "PriceCache.warm"}
    assert fails("no_mutable_default", workspace, **check) is not None
    edit(workspace / "pricefeed/cache.py", "skipped: list[str] = []", "skipped: list[str] | None = None")
    assert fails("no_mutable_default", workspace, **check) is None


def test_new_test_file_needs_a_new_passing_test_that_names_the_function(workspace: Path) -> None:
    assert "no new test file" in (fails("new_test_file", workspace, mentions="load_snapshot") or "")
    test = workspace / "tests/test_storage.py"
    test.write_text(
        "from pricefeed.cache import PriceCache\n"
        "from pricefeed.storage import load_snapshot, save_snapshot\n\n\n"
        "def test_round_trip(tmp_path):\n"
        "    cache = PriceCache()\n"
        "    cache.put('BTC-USD', 1.0)\n"
        "    save_snapshot(cache, tmp_path / 's')\n"
        "    assert load_snapshot(tmp_path / 's')['BTC-USD'][0] == 1.0\n",
        encoding="utf-8",
    )
    assert fails("new_test_file", workspace, mentions="load_snapshot") is None
    assert "mentions" in (fails("new_test_file", workspace, mentions="warm") or "")
    edit(test, "== 1.0", "== 2.0")
    assert "exited 1" in (fails("new_test_file", workspace, mentions="load_snapshot") or "")


@pytest.mark.parametrize(
    ("base", "pinned"),
    [
        ("python:latest", False),
        ("python", False),
        ("registry.example.com:5000/python", False),
        ("python:3.12-slim", True),
        ("python@sha256:" + "0" * 64, True),
        ("--platform=linux/amd64 python:3.12.7", True),
    ],
)
def test_dockerfile_pinned(workspace: Path, base: str, pinned: bool) -> None:
    edit(workspace / "Dockerfile", "FROM python:latest", f"FROM {base}")
    assert (fails("dockerfile_pinned", workspace, file="Dockerfile") is None) is pinned


def test_k8s_limits_needs_cpu_and_memory_on_the_named_container(workspace: Path) -> None:
    check = {"file": "k8s/deployment.yaml", "container": "api"}
    assert fails("k8s_limits", workspace, **check) is not None
    manifest = workspace / "k8s/deployment.yaml"
    edit(manifest, "          securityContext:", "          resources:\n            limits:\n"
         "              memory: 256Mi\n          securityContext:")  # fmt: skip
    assert "cpu" in (fails("k8s_limits", workspace, **check) or "")
    edit(manifest, "              memory: 256Mi", "              memory: 256Mi\n              cpu: 500m")
    assert fails("k8s_limits", workspace, **check) is None
    assert "no container" in (fails("k8s_limits", workspace, file="k8s/deployment.yaml", container="web") or "")


def test_every_planted_id_a_task_names_is_in_the_manifest() -> None:
    planted = {p["id"] for p in load_manifest()}
    named = {i for t in TASKS.values() for c in t.checks for i in c.get("ids", [])}
    assert named and named <= planted
