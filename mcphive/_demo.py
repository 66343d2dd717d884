"""``mcphive demo``: route six real tasks to the six agents on a fresh copy of the example project.

The copy lives in a temporary folder with its own ``git init``, never in the repository. After the
tasks, the report checks itself against the example's manifest of planted problems.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mcphive._report import render_result
from mcphive.inference.base import ChatModel
from mcphive.settings import Settings
from mcphive.types import TaskResult, TaskStatus

__all__ = ["DEMO_TASKS", "DemoReport", "demo_workspace", "planted_coverage", "run_demo", "run_demo_tasks"]

DEMO_TASKS: tuple[str, ...] = (
    "Lint the code and report the problems",
    "Which public functions are missing docstrings?",
    "Run the test suite and explain the failure",
    "Review the Dockerfile and harden it",
    "What caused the error burst in the application logs?",
    "Scan the project for hard-coded secrets and insecure code",
)


@dataclass
class DemoReport:
    """The demo's results and how many planted problems they found."""

    workspace: Path
    results: list[TaskResult]
    found: list[dict[str, Any]] = field(default_factory=list)
    missed: list[dict[str, Any]] = field(default_factory=list)


def demo_workspace(target: Path) -> Path:
    """Copy the bundled example project to ``target`` and make it a git repository."""
    from mcphive.sample import copy_sample_project

    copy_sample_project(target)
    if shutil.which("git"):
        git = ["git", "-c", "user.name=mcphive demo", "-c", "user.email=demo@mcphive.invalid"]
        for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "example project"]):
            subprocess.run([*git, *argv], cwd=target, check=True, capture_output=True)
    return target


def planted_coverage(results: list[TaskResult]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split the manifest's planted problems into those some task's findings report, and the rest."""
    from mcphive.sample import load_manifest

    reported = {(f.file, f.rule, f.line) for r in results for f in r.findings}
    reported |= {(file, rule, None) for file, rule, _ in reported}
    found: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    for problem in load_manifest():
        key = (problem["file"], str(problem["rule"]), problem.get("line"))
        (found if key in reported else missed).append(problem)
    return found, missed


async def run_demo_tasks(settings: Settings, workspace: Path, *, model: ChatModel | None = None) -> DemoReport:
    """Submit every demo task (routed, not assigned), wait for all, and score them against the manifest."""
    from mcphive.hive import Hive

    # One model-chosen step per task shows the survey/choice split without making the demo wait on a CPU model.
    settings = settings.model_copy(update={"max_model_steps": min(settings.max_model_steps, 1)})
    async with Hive.open(settings, model=model) as hive:
        handles = [await hive.submit(text, workspace=workspace) for text in DEMO_TASKS]
        results = [await handle.wait() for handle in handles]
    found, missed = planted_coverage(results)
    return DemoReport(workspace, results, found, missed)


def _coverage_table(report: DemoReport) -> Table:
    table = Table(title=f"planted problems found: {len(report.found)} of {len(report.found) + len(report.missed)}")
    for column in ("agent", "file", "rule", "found"):
        table.add_column(column)
    for problem in sorted(report.found + report.missed, key=lambda p: (p["agent"], p["file"])):
        ok = problem in report.found
        table.add_row(
            problem["agent"],
            problem["file"],
            str(problem["rule"]),
            Text("yes", style="green") if ok else Text("no", style="red"),
        )
    return table


def run_demo(settings: Settings, *, keep: bool, as_json: bool, console: Console, progress: Console) -> int:
    """The CLI entry: run, print every report and the coverage table; exit 0 when all tasks succeeded."""
    import json

    tmp = Path(tempfile.mkdtemp(prefix="mcphive-demo-"))
    try:
        workspace = demo_workspace(tmp / "sample_project")
        progress.print(f"working on a copy of the example project in {workspace}", style="dim")
        report = anyio.run(run_demo_tasks, settings, workspace)
        if as_json:
            payload = {
                "workspace": str(workspace),
                "results": [r.model_dump(mode="json") for r in report.results],
                "found": report.found,
                "missed": report.missed,
            }
            console.print_json(json.dumps(payload, default=str))
        else:
            for result in report.results:
                render_result(result, console)
            console.print(_coverage_table(report))
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r.status is TaskStatus.SUCCEEDED for r in report.results) else 1
