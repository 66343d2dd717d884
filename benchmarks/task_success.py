"""Task success, end to end: realistic tasks through ``mcphive run --json``, each judged by a checker.

Every task in ``data/tasks.toml`` runs in its own ``mcphive run`` process, on a fresh copy of the
example project (a git repository, as ``mcphive demo`` makes it) with a fresh data directory, and
is routed as a user's request would be. Afterwards a checker decides success from what the run
left behind — the findings in the result, the answer, the files of the workspace (parsed, or
tested with pytest) — never from the agent's own status or claims.

The embedded model (``--model local``) always runs; a stronger model runs too when one is
configured — Anthropic (``ANTHROPIC_API_KEY``), an OpenAI-compatible server such as vLLM
(``MCPHIVE_OPENAI_BASE_URL``) or a model pool (``MCPHIVE_POOL_MEMBERS``) — and is listed as skipped,
with the reason, when it is not.

    python benchmarks/task_success.py [--only ID,...] [--embedded-steps 1] [--strong-steps 6]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from _common import RESULTS, write

from mcphive._demo import demo_workspace
from mcphive.sample import load_manifest, sample_project_path
from mcphive.settings import Settings, load_settings
from mcphive.types import AGENT_NAMES

TASKS_FILE = Path(__file__).parent / "data" / "tasks.toml"
MCPHIVE = str(Path(sys.executable).parent / "mcphive")
KINDS = ("report", "answer", "edit")
PYTEST_TIMEOUT_S = 120

Result = dict[str, Any]
"""A task's ``TaskResult`` as ``mcphive run --json`` prints it."""


# ---------------------------------------------------------------- the task list


@dataclass(frozen=True)
class Task:
    """One request with its checks; ``agent`` is the specialist it is written for."""

    id: str
    agent: str
    kind: str
    text: str
    checks: tuple[dict[str, Any], ...]


def load_tasks(path: Path = TASKS_FILE) -> list[Task]:
    """Read and validate the task list: unique ids, known agents, kinds and checks, planted ids in the manifest."""
    raw = tomllib.loads(path.read_text(encoding="utf-8")).get("task", [])
    planted = {p["id"] for p in load_manifest()}
    tasks: list[Task] = []
    for entry in raw:
        task = Task(entry["id"], entry["agent"], entry["kind"], entry["text"], tuple(entry["check"]))
        problems = []
        if task.agent not in AGENT_NAMES:
            problems.append(f"unknown agent {task.agent!r}")
        if task.kind not in KINDS:
            problems.append(f"kind {task.kind!r} is not one of {KINDS}")
        if not task.checks:
            problems.append("no checks")
        for check in task.checks:
            kind = check.get("kind")
            if kind not in CHECKS:
                problems.append(f"unknown check kind {kind!r}")
                continue
            missing = sorted(CHECK_FIELDS[kind] - set(check))
            if missing:
                problems.append(f"check {kind!r} lacks {', '.join(missing)}")
            unknown = sorted(set(check.get("ids", [])) - planted)
            if unknown:
                problems.append(f"planted ids not in the manifest: {', '.join(unknown)}")
        if problems:
            raise ValueError(f"{path.name}: task {task.id!r}: {'; '.join(problems)}")
        tasks.append(task)
    ids = [t.id for t in tasks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{path.name}: duplicate task ids {', '.join(duplicates)}")
    return tasks


# ---------------------------------------------------------------- what a result holds


def _results(result: Result) -> Iterator[Result]:
    """The result and, depth first, every subtask result of a plan."""
    yield result
    for sub in result.get("subtasks") or []:
        yield from _results(sub)


def tool_calls(result: Result) -> list[dict[str, Any]]:
    """Every tool call of the task and its subtasks."""
    return [call for r in _results(result) for step in r.get("steps") or [] for call in step.get("tool_calls") or []]


def findings(result: Result) -> list[dict[str, Any]]:
    """Every finding that any tool call of the task reported."""
    found = []
    for call in tool_calls(result):
        for finding in (call.get("structured") or {}).get("findings") or []:
            if isinstance(finding, dict):
                found.append(finding)
    return found


def answer(result: Result) -> str:
    """The written answer of the task and of its subtasks."""
    return "\n".join(r.get("answer") or "" for r in _results(result))


def routed_to(result: Result) -> str | None:
    """The agent that ran the task, or the agents of its plan's steps joined by ``+``."""
    if result.get("agent"):
        return str(result["agent"])
    agents = [str(sub.get("agent")) for sub in result.get("subtasks") or []]
    return "+".join(agents) or None


# ---------------------------------------------------------------- checks: each returns why it failed, or None

Check = Callable[[dict[str, Any], Path, Result], str | None]


def check_planted(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """Each planted problem is reported: a finding with its file and rule (and its line, when the finding has one)."""
    manifest = {p["id"]: p for p in load_manifest()}
    reported = findings(result)
    missed = []
    for problem_id in check["ids"]:
        problem = manifest[problem_id]
        if not any(
            f.get("file") == problem["file"]
            and str(f.get("rule")) == str(problem["rule"])
            and f.get("line") in (None, problem["line"])
            for f in reported
        ):
            missed.append(f"{problem_id} ({problem['file']} {problem['rule']})")
    if missed:
        return f"not reported: {', '.join(missed)} ({len(reported)} findings in all)"
    return None


def check_answer_mentions(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """The answer contains one of ``any`` (case-insensitive)."""
    text = answer(result).lower()
    if any(s.lower() in text for s in check["any"]):
        return None
    shown = " ".join(answer(result).split())[:160]
    return f"the answer names none of {check['any']}: {shown!r}"


def check_tool_result(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """A call of ``tool`` succeeded and its output contains ``contains``."""
    calls = [c for c in tool_calls(result) if c.get("tool") == check["tool"]]
    if not calls:
        return f"{check['tool']} was never called"
    for call in calls:
        output = (call.get("result") or "") + json.dumps(call.get("structured") or {})
        if not call.get("is_error") and check["contains"] in output:
            return None
    return f"{check['tool']} was called but no successful call mentions {check['contains']!r}"


def check_not_leaked(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """The secret appears neither in the answer nor in any finding (findings are shown and stored redacted)."""
    if check["secret"] in answer(result) or check["secret"] in json.dumps(findings(result)):
        return "a secret value appears unredacted in the answer or the findings"
    return None


def _pytest(workspace: Path, paths: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", *paths]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(argv, cwd=workspace, capture_output=True, text=True, timeout=PYTEST_TIMEOUT_S, env=env)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def check_pytest(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """pytest on ``paths`` in the workspace exits 0: tests ran and none failed."""
    completed = _pytest(workspace, list(check["paths"]))
    if completed.returncode == 0:
        return None
    return f"pytest {' '.join(check['paths'])} exited {completed.returncode}: {_last_line(completed.stdout)}"


def _parse(workspace: Path, name: str) -> ast.Module | str:
    """The file's syntax tree, or why there is none."""
    path = workspace / name
    if not path.is_file():
        return f"{name} no longer exists"
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=name)
    except (SyntaxError, UnicodeDecodeError) as e:
        return f"{name} is no longer valid Python ({e})"


Definition = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def _definition(tree: ast.Module, symbol: str) -> Definition | None:
    """The class or function at dotted ``symbol`` ("Class.method"), or None."""
    scope: list[ast.stmt] = tree.body
    node: Definition | None = None
    for part in symbol.split("."):
        node = next((n for n in scope if isinstance(n, Definition) and n.name == part), None)
        if node is None:
            return None
        scope = node.body
    return node


def check_docstring(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """The class or function has a non-empty docstring."""
    tree = _parse(workspace, check["file"])
    if isinstance(tree, str):
        return tree
    node = _definition(tree, check["symbol"])
    if node is None:
        return f"{check['symbol']} is no longer defined in {check['file']}"
    if not (ast.get_docstring(node) or "").strip():
        return f"{check['symbol']} in {check['file']} still has no docstring"
    return None


def check_no_import(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """The file parses and imports nothing from ``module``."""
    tree = _parse(workspace, check["file"])
    if isinstance(tree, str):
        return tree
    module = check["module"]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if any(n == module or n.startswith(module + ".") for n in names):
            return f"{check['file']} still imports {module} (line {node.lineno})"
    return None


_MUTABLE = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def check_no_mutable_default(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """No parameter of the function defaults to a list, dict or set display."""
    tree = _parse(workspace, check["file"])
    if isinstance(tree, str):
        return tree
    node = _definition(tree, check["symbol"])
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return f"function {check['symbol']} is no longer defined in {check['file']}"
    defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    if any(isinstance(d, _MUTABLE) for d in defaults):
        return f"{check['symbol']} still has a mutable default argument"
    return None


def check_new_test_file(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """A new ``tests/test_*.py`` names ``mentions``, and pytest on the new files passes."""
    original = {p.name for p in (sample_project_path() / "tests").glob("test_*.py")}
    new = sorted(p for p in (workspace / "tests").rglob("test_*.py") if p.name not in original)
    if not new:
        return "no new test file under tests/"
    if not any(check["mentions"] in p.read_text(encoding="utf-8", errors="replace") for p in new):
        return f"no new test file mentions {check['mentions']!r}"
    completed = _pytest(workspace, [p.relative_to(workspace).as_posix() for p in new])
    if completed.returncode != 0:
        return f"pytest on the new test files exited {completed.returncode}: {_last_line(completed.stdout)}"
    return None


def check_dockerfile_pinned(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """Every ``FROM`` names an image by a tag other than ``latest``, or by digest."""
    path = workspace / check["file"]
    if not path.is_file():
        return f"{check['file']} no longer exists"
    images = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and words[0].upper() == "FROM":
            image = next((w for w in words[1:] if not w.startswith("--")), "")
            images.append(image)
    if not images:
        return f"{check['file']} has no FROM line"
    for image in images:
        name = image.rsplit("/", 1)[-1]
        tag = name.split(":", 1)[1] if ":" in name else ""
        if "@sha256:" not in image and tag in ("", "latest"):
            return f"{check['file']} still uses an unpinned base image: {image}"
    return None


def check_k8s_limits(check: dict[str, Any], workspace: Path, result: Result) -> str | None:
    """The named container sets ``resources.limits`` for both cpu and memory."""
    path = workspace / check["file"]
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as e:
        return f"{check['file']} cannot be read as YAML ({e})"
    for document in documents:
        pod = ((document.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or []:
            if isinstance(container, dict) and container.get("name") == check["container"]:
                limits = (container.get("resources") or {}).get("limits") or {}
                lacking = [k for k in ("cpu", "memory") if k not in limits]
                if lacking:
                    return f"container {check['container']} has no {' or '.join(lacking)} limit"
                return None
    return f"no container named {check['container']!r} in {check['file']}"


CHECKS: dict[str, Check] = {
    "planted": check_planted,
    "answer_mentions": check_answer_mentions,
    "tool_result": check_tool_result,
    "not_leaked": check_not_leaked,
    "pytest": check_pytest,
    "docstring": check_docstring,
    "no_import": check_no_import,
    "no_mutable_default": check_no_mutable_default,
    "new_test_file": check_new_test_file,
    "dockerfile_pinned": check_dockerfile_pinned,
    "k8s_limits": check_k8s_limits,
}
CHECK_FIELDS: dict[str, set[str]] = {
    "planted": {"ids"},
    "answer_mentions": {"any"},
    "tool_result": {"tool", "contains"},
    "not_leaked": {"secret"},
    "pytest": {"paths"},
    "docstring": {"file", "symbol"},
    "no_import": {"file", "module"},
    "no_mutable_default": {"file", "symbol"},
    "new_test_file": {"mentions"},
    "dockerfile_pinned": {"file"},
    "k8s_limits": {"file", "container"},
}


def judge(task: Task, workspace: Path, result: Result) -> list[str]:
    """Run every check of ``task``; the reasons of those that fail (empty: the task succeeded)."""
    reasons = []
    for check in task.checks:
        why = CHECKS[check["kind"]](check, workspace, result)
        if why is not None:
            reasons.append(why)
    return reasons


# ---------------------------------------------------------------- running tasks through the CLI


@dataclass(frozen=True)
class Backend:
    """A model to run the tasks with: its results key, the CLI's ``--model`` and its step limit."""

    key: str
    model: str
    max_model_steps: int


@dataclass
class Outcome:
    """What one task run came to."""

    id: str
    agent: str
    kind: str
    success: bool
    seconds: float
    routed_to: str | None = None
    status: str | None = None
    """The agent's own status: reported, not judged (a failed run's findings still count)."""
    error: str | None = None
    tool_calls: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)


def configured_backends(
    settings: Settings, embedded_steps: int, strong_steps: int
) -> tuple[list[Backend], dict[str, str]]:
    """The embedded model plus every stronger model the settings configure; and why the others are skipped."""
    backends = [Backend("embedded_model", "local", embedded_steps)]
    skipped: dict[str, str] = {}
    if settings.anthropic_api_key:
        backends.append(Backend(f"anthropic:{settings.anthropic_model}", "anthropic", strong_steps))
    else:
        skipped["anthropic"] = "ANTHROPIC_API_KEY is not set"
    if settings.openai_base_url:
        backends.append(Backend(f"openai:{settings.openai_model}", "openai", strong_steps))
    else:
        skipped["openai"] = (
            "no OpenAI-compatible server (vLLM, llama.cpp) configured: MCPHIVE_OPENAI_BASE_URL is not set"
        )
    if settings.pool_members:
        backends.append(Backend(f"pool:{settings.pool_model}", "pool", strong_steps))
    else:
        skipped["pool"] = "no model pool configured: MCPHIVE_POOL_MEMBERS is not set"
    return backends, skipped


def run_task(task: Task, backend: Backend, *, config: str | None, task_timeout_s: float) -> Outcome:
    """Run ``task`` in a fresh ``mcphive run --json`` process on a fresh workspace copy, then judge it."""
    with tempfile.TemporaryDirectory(prefix="mcphive-task-") as tmp:
        workspace = demo_workspace(Path(tmp) / "sample_project")
        argv = [MCPHIVE, "--data-dir", str(Path(tmp) / "data"), "--model", backend.model, "--json"]
        if config:
            argv += ["--config", config]
        argv += ["run", task.text, "--workspace", str(workspace)]
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "MCPHIVE_MAX_MODEL_STEPS": str(backend.max_model_steps),
            "MCPHIVE_TASK_TIMEOUT_S": str(task_timeout_s),
            # Unattended: writing tools run without asking (the checker judges what they did).
            "MCPHIVE_APPROVAL": "never",
            # One llama.cpp thread: on a shared machine a second one spends its share spin-waiting.
            "MCPHIVE_LOCAL_THREADS": "1",
        }
        started = time.perf_counter()
        try:
            completed = subprocess.run(
                argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=2 * task_timeout_s + 60
            )
        except subprocess.TimeoutExpired:
            seconds = time.perf_counter() - started
            return Outcome(task.id, task.agent, task.kind, False, round(seconds, 1), why=["mcphive run did not exit"])
        seconds = round(time.perf_counter() - started, 1)
        try:
            result: Result = json.loads(completed.stdout)
        except json.JSONDecodeError:
            why = f"mcphive run exited {completed.returncode} without a result: {_last_line(completed.stderr)}"
            return Outcome(task.id, task.agent, task.kind, False, seconds, why=[why])
        reasons = judge(task, workspace, result)
        return Outcome(
            task.id,
            task.agent,
            task.kind,
            success=not reasons,
            seconds=seconds,
            routed_to=routed_to(result),
            status=result.get("status"),
            error=result.get("error"),
            tool_calls=[f"{c.get('tool')}[{c.get('chosen_by')}]" for c in tool_calls(result)],
            why=reasons,
        )


def _rate(outcomes: list[Outcome]) -> float:
    return round(sum(o.success for o in outcomes) / len(outcomes), 3) if outcomes else 0.0


def _breakdown(outcomes: list[Outcome], attr: str, keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    table = {}
    for key in keys:
        group = [o for o in outcomes if getattr(o, attr) == key]
        if group:
            table[key] = {"tasks": len(group), "success": _rate(group)}
    return table


def interleaved(tasks: list[Task]) -> list[Task]:
    """The tasks in turns over the agents (code, docs, test, ...), so any prefix of a run covers every agent."""
    queues = {agent: [t for t in tasks if t.agent == agent] for agent in AGENT_NAMES}
    order: list[Task] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                order.append(queue.pop(0))
    return order


def _summary(backend: Backend, outcomes: list[Outcome], seconds: float, total: int) -> dict[str, Any]:
    return {
        "backend": backend.model,
        "max_model_steps": backend.max_model_steps,
        "tasks_run": len(outcomes),
        "complete": len(outcomes) == total,
        "succeeded": sum(o.success for o in outcomes),
        "seconds": round(seconds, 1),
        "by_agent": _breakdown(outcomes, "agent", AGENT_NAMES),
        "by_kind": _breakdown(outcomes, "kind", KINDS),
        "outcomes": [asdict(o) for o in outcomes],
    }


def _earlier_models(running: set[str]) -> dict[str, Any]:
    """The results file's runs of the models not run now (e.g. the embedded run under ``--skip-embedded``)."""
    path = RESULTS / "task_success.json"
    if not path.is_file():
        return {}
    models: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")).get("models", {})
    return {key: run for key, run in models.items() if key not in running}


def _previous(backend: Backend) -> tuple[list[Outcome], float]:
    """The outcomes (and seconds) an interrupted earlier run of ``backend`` with the same step limit recorded."""
    path = RESULTS / "task_success.json"
    if not path.is_file():
        return [], 0.0
    earlier = json.loads(path.read_text(encoding="utf-8")).get("models", {}).get(backend.key)
    if not earlier or earlier.get("max_model_steps") != backend.max_model_steps:
        return [], 0.0
    return [Outcome(**o) for o in earlier["outcomes"]], float(earlier.get("seconds", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated task ids, printed only (the results file is left alone)")
    parser.add_argument("--config", help="an mcphive.toml that configures the stronger model(s)")
    parser.add_argument("--embedded-steps", type=int, default=1, help="model-chosen tool calls, embedded model")
    parser.add_argument("--strong-steps", type=int, default=6, help="model-chosen tool calls, stronger models")
    parser.add_argument("--task-timeout", type=float, default=900.0, help="seconds per task (task_timeout_s)")
    parser.add_argument(
        "--skip-embedded", action="store_true", help="run only the stronger models (the file keeps the embedded run)"
    )
    parser.add_argument("--resume", action="store_true", help="keep the outcomes an interrupted run already wrote")
    args = parser.parse_args()

    tasks = interleaved(load_tasks())
    if args.only:
        wanted = set(args.only.split(","))
        unknown = sorted(wanted - {t.id for t in tasks})
        if unknown:
            parser.error(f"no task called {', '.join(unknown)}; the ids are in {TASKS_FILE}")
        tasks = [t for t in tasks if t.id in wanted]
    backends, skipped = configured_backends(load_settings(args.config), args.embedded_steps, args.strong_steps)
    if args.skip_embedded:
        backends = backends[1:]

    earlier = {} if args.only else _earlier_models({b.key for b in backends})
    report: dict[str, Any] = {"tasks": len(tasks)}
    report.update({key: _rate([Outcome(**o) for o in run["outcomes"]]) for key, run in earlier.items()})
    report.update({b.key: 0.0 for b in backends})
    report["skipped"] = skipped
    report["parameters"] = {"task_timeout_s": args.task_timeout, "tasks_file": "benchmarks/data/tasks.toml"}
    report["models"] = earlier

    def save() -> None:
        if not args.only:  # a subset is a check of the tasks, not a measurement
            write("task_success", report)

    for backend in backends:
        outcomes, seconds = _previous(backend) if args.resume else ([], 0.0)
        done = {o.id for o in outcomes}
        for task in tasks:
            if task.id in done:
                continue
            outcome = run_task(task, backend, config=args.config, task_timeout_s=args.task_timeout)
            outcomes.append(outcome)
            seconds += outcome.seconds
            mark = "ok  " if outcome.success else "FAIL"
            why = "" if outcome.success else "  " + "; ".join(outcome.why)[:200]
            print(f"[{backend.key}] {len(outcomes):2}/{len(tasks)} {mark} {task.id:34} {outcome.seconds:6.1f} s{why}",
                  flush=True)  # fmt: skip
            # Written after every task, so an interrupted run keeps what it measured (and --resume goes on).
            report[backend.key] = _rate(outcomes)
            report["models"][backend.key] = _summary(backend, outcomes, seconds, len(tasks))
            save()
        report[backend.key] = _rate(outcomes)
        report["models"][backend.key] = _summary(backend, outcomes, seconds, len(tasks))
    save()
    for backend in backends:
        d = report["models"][backend.key]
        print(f"{backend.key}: {report[backend.key]:.3f} ({d['succeeded']}/{d['tasks_run']}) in {d['seconds']:.0f} s; "
              f"by kind {d['by_kind']}")  # fmt: skip
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if not args.only:
        print(f"wrote {RESULTS / 'task_success.json'}")


if __name__ == "__main__":
    main()
