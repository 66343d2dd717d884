"""The test agent's toolset: run the workspace's pytest suite and report each failure.

pytest runs under the interpreter mcphive runs in (``sys.executable``), with the workspace as its
working directory, so the suite imports the workspace's own code. Results come from pytest's JUnit
XML report, written to a temporary folder *outside* the workspace; the human-readable console
output is never parsed. ``-p no:cacheprovider`` and ``PYTHONDONTWRITEBYTECODE`` keep the run from
leaving ``.pytest_cache`` or ``__pycache__`` folders behind.

Running a test suite executes the workspace's code: only point this tool at a workspace you trust.
"""

from __future__ import annotations

import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import dump_findings, existing_path, relative_or_none, run_tool
from mcphive.types import Finding

__all__ = ["PYTEST_TIMEOUT", "TOOLS", "run_pytest"]

PYTEST_TIMEOUT = 300.0
"""Seconds a whole test run may take before it is stopped."""

# pytest's traceback entries end with "path/to/file.py:18: ExceptionType".
_LOCATION = re.compile(r"^(?P<file>[^\s:][^:\n]*\.py):(?P<line>\d+):", re.MULTILINE)
_MAX_MESSAGE = 1000


def _node_id(case: ET.Element) -> str:
    """pytest's node id (``tests/test_x.py::TestY::test_z``) rebuilt from a JUnit testcase."""
    classname, name = case.get("classname", ""), case.get("name", "")
    file = case.get("file")
    if not classname:  # a collection error: the "name" is the dotted module
        return file or name.replace(".", "/") + ".py"
    if file is None:
        return f"{classname.replace('.', '/')}.py::{name}"
    module = PurePosixPath(file).with_suffix("").as_posix().replace("/", ".")
    rest = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
    return "::".join(part for part in (file, *rest.split("."), name) if part)


def _location(jail: Jail, case: ET.Element, text: str) -> tuple[str, int | None]:
    """The file and line where a test failed: the last traceback entry inside the workspace."""
    for match in reversed(list(_LOCATION.finditer(text))):
        file = relative_or_none(jail, match["file"], jail.root)
        if file is not None:
            return file, int(match["line"])
    file = case.get("file") or ""
    line = case.get("line")
    # JUnit's line attribute is 0-based; findings count lines from 1.
    return file, int(line) + 1 if line is not None else None


def _failure_finding(jail: Jail, case: ET.Element, outcome: ET.Element) -> Finding:
    node_id = _node_id(case)
    text = outcome.text or ""
    file, line = _location(jail, case, text)
    last_lines = text.strip().splitlines()[-1:]
    message = outcome.get("message") or (last_lines[0] if last_lines else "no message")
    kind = "failed" if outcome.tag == "failure" else "error"
    return Finding(
        file=file or node_id.split("::", 1)[0],
        line=line,
        rule=node_id,
        severity="high",
        message=f"{node_id} {kind}: {message}"[:_MAX_MESSAGE],
        fix=None,
        tool="pytest",
    )


def _parse_report(jail: Jail, report: Path) -> tuple[dict[str, int], list[Finding]]:
    # The report is written by pytest itself (it escapes test output), and the stdlib parser
    # neither fetches external entities nor expands nested ones without bound (expat >= 2.4.1).
    root = ET.parse(report).getroot()
    counts = {"tests": 0, "failed": 0, "errors": 0, "skipped": 0}
    findings: list[Finding] = []
    for case in root.iter("testcase"):
        counts["tests"] += 1
        for outcome in case:
            if outcome.tag in ("failure", "error"):
                counts["failed" if outcome.tag == "failure" else "errors"] += 1
                findings.append(_failure_finding(jail, case, outcome))
                break
            if outcome.tag == "skipped":
                counts["skipped"] += 1
                break
    counts["passed"] = counts["tests"] - counts["failed"] - counts["errors"] - counts["skipped"]
    return counts, findings


def run_pytest(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Run pytest on ``path`` (a test file or folder); counts, and one finding per failing or erroring test."""
    existing_path(jail, path)
    with tempfile.TemporaryDirectory(prefix="mcphive-pytest-") as tmp:
        report = Path(tmp) / "report.xml"
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1"]
        completed = run_tool([*argv, f"--junitxml={report}", path], cwd=jail.root, timeout=PYTEST_TIMEOUT)
        if completed.returncode == 5:
            return {
                "findings": [],
                "counts": {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0},
                "exit_code": 5,
                "summary": f"pytest collected no tests under {path!r}",
            }
        if not report.is_file():
            tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
            raise ToolError(f"pytest did not run (exit {completed.returncode}); its last output:\n{tail}")
        try:
            counts, findings = _parse_report(jail, report)
        except ET.ParseError as e:
            raise ToolError(f"pytest wrote an unreadable JUnit report ({e}); run it again") from e
    summary = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "errors", "skipped") if counts[k])
    return {
        "findings": dump_findings(findings),
        "counts": counts,
        "failed_tests": [f.rule for f in findings],
        "exit_code": completed.returncode,
        "summary": f"pytest: {summary or 'no tests'} under {path!r}",
    }


TOOLS = [
    ToolDef(
        "run_pytest",
        run_pytest,
        "Run the workspace's pytest suite (or one test file or folder); "
        "report each failing test with the check that failed.",
        file_args={"path": (".py", "/")},
    )
]
