"""The test agent's coverage and test-writing tools.

:func:`coverage_report` runs the workspace's pytest suite under coverage.py, with the interpreter
mcphive runs in, and reads coverage's JSON report. The data file and the report live in a
temporary folder *outside* the workspace, so the run leaves no ``.coverage`` file behind. Test
files are left out of the per-file results (a test always "covers" itself). Like ``run_pytest``,
this executes the workspace's code: only point it at a workspace you trust.

:func:`write_test_file` lets the test agent add a new test module and nothing else: only under
``tests/``, only ``test_*.py`` names, never over an existing file, and only source that compiles.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import dump_findings, existing_path, run_tool
from mcphive.mcp_servers.toolsets.edits import MAX_EDIT_BYTES, atomic_write
from mcphive.types import Finding

__all__ = ["COVERAGE_TIMEOUT", "TOOLS", "coverage_report", "write_test_file"]

COVERAGE_TIMEOUT = 300.0
"""Seconds the test run under coverage may take before it is stopped."""

_TEST_DIRS = frozenset({"tests", "test", "testing"})


def _is_test_file(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    name = parts[-1]
    return bool(_TEST_DIRS.intersection(parts[:-1])) or name.startswith("test_") or name == "conftest.py"


def _ranges(lines: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    spans: list[str] = []
    start = previous = None
    for line in [*sorted(lines), None]:
        if start is not None and previous is not None and line != previous + 1:
            spans.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if start is None:
            start = line
        previous = line
    return ", ".join(spans)


def _run_under_coverage(jail: Jail, path: str, tmp: Path) -> dict[str, Any]:
    """Run pytest under coverage and return coverage's JSON report."""
    if importlib.util.find_spec("coverage") is None:
        raise ToolError("coverage is not installed; install it into mcphive's environment with `pip install coverage`")
    data, report = tmp / "coverage.data", tmp / "coverage.json"
    coverage = [sys.executable, "-m", "coverage"]
    run = [*coverage, "run", f"--data-file={data}", f"--source={jail.root}", "-m", "pytest"]
    completed = run_tool([*run, "-q", "-p", "no:cacheprovider", path], cwd=jail.root, timeout=COVERAGE_TIMEOUT)
    if completed.returncode not in (0, 1) or not data.is_file():
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise ToolError(f"the tests did not run under coverage (exit {completed.returncode}); last output:\n{tail}")
    exported = run_tool([*coverage, "json", f"--data-file={data}", "-o", str(report)], cwd=jail.root)
    if exported.returncode != 0 or not report.is_file():
        raise ToolError(f"coverage could not write its report: {(exported.stdout + exported.stderr).strip()[:500]}")
    try:
        result: dict[str, Any] = json.loads(report.read_text("utf-8"))
    except json.JSONDecodeError as e:
        raise ToolError(f"coverage wrote a report that is not JSON; check the coverage version ({e})") from e
    result["tests_failed"] = completed.returncode == 1
    return result


def coverage_report(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Run the tests under ``path`` with coverage; per-file percentages and the lines no test runs."""
    existing_path(jail, path)
    with tempfile.TemporaryDirectory(prefix="mcphive-coverage-") as tmp:
        report = _run_under_coverage(jail, path, Path(tmp))
    findings: list[Finding] = []
    files: dict[str, dict[str, Any]] = {}
    statements = covered = 0
    for name, data in sorted(report.get("files", {}).items()):
        rel = PurePosixPath(Path(name).as_posix()).as_posix()
        if Path(name).is_absolute() or _is_test_file(rel):
            continue  # a file outside the workspace (absolute) or a test module
        summary, missing = data["summary"], sorted(data.get("missing_lines", []))
        percent = round(float(summary["percent_covered"]), 1)
        statements += summary["num_statements"]
        covered += summary["covered_lines"]
        files[rel] = {"percent": percent, "statements": summary["num_statements"], "missing_lines": missing}
        if missing:
            findings.append(
                Finding(
                    file=rel,
                    line=missing[0],
                    rule="uncovered-lines",
                    severity="medium" if percent < 50 else "low",
                    message=f"{percent}% covered; no test runs lines {_ranges(missing)}",
                    fix="add a test that exercises these lines",
                    tool="coverage",
                )
            )
    total = round(100.0 * covered / statements, 1) if statements else 100.0
    failing = " (some tests failed)" if report["tests_failed"] else ""
    return {
        "findings": dump_findings(findings),
        "total_percent": total,
        "statements": statements,
        "covered": covered,
        "files": files,
        "tests_failed": report["tests_failed"],
        "summary": f"coverage {total}% of {statements} statements in {len(files)} files under test{failing}",
    }


def write_test_file(jail: Jail, path: str, content: str) -> dict[str, Any]:
    """Create a new test module ``tests/.../test_*.py``; never overwrites, and the source must compile.

    Raises:
        ToolError: the path is outside ``tests/``, not a ``test_*.py`` name, already exists, or the
            content is not valid Python.
    """
    target = jail.resolve(path)
    rel = PurePosixPath(jail.relative(target))
    if rel.parts[0] != "tests" or len(rel.parts) < 2:
        raise ToolError(f"{path!r} is not under tests/; test files go in the tests folder, e.g. tests/test_x.py")
    if not (rel.name.startswith("test_") and rel.suffix == ".py"):
        raise ToolError(f"{rel.name!r} is not a test module name; name it test_<something>.py")
    if target.exists():
        raise ToolError(f"{path!r} already exists; pick a new name (this tool never overwrites)")
    data = content.encode("utf-8")
    if len(data) > MAX_EDIT_BYTES:
        raise ToolError(f"content is over {MAX_EDIT_BYTES} bytes; write a smaller test module")
    try:
        compile(data, str(rel), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        raise ToolError(f"the test module does not compile (line {line}): {getattr(e, 'msg', e)}; fix it") from e
    atomic_write(target, data, exclusive=True)
    tests = sum(1 for line in content.splitlines() if line.lstrip().startswith(("def test_", "async def test_")))
    change = {"path": str(rel), "action": "created", "summary": f"new test module with {tests} tests"}
    return {
        "path": str(rel),
        "bytes": len(data),
        "tests": tests,
        "changes": [change],
        "summary": f"wrote {rel} with {tests} tests",
    }


TOOLS = [
    ToolDef(
        "coverage_report",
        coverage_report,
        "Run the tests with coverage; report each file's covered percentage and the lines no test runs.",
        file_args={"path": (".py", "/")},
    ),
    ToolDef(
        "write_test_file",
        write_test_file,
        "Create a new test module tests/test_<name>.py (never overwrites an existing file).",
        writes=True,
    ),
]
