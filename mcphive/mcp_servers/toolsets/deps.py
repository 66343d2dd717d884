"""Dependency tools: pins that let a build drift (infra) and known vulnerabilities (security, pip-audit).

Requirements are read from ``requirements*.txt`` files and from ``pyproject.toml``'s
``[project] dependencies`` and ``optional-dependencies``, and parsed with
``packaging.requirements.Requirement`` (the parser pip itself uses), never by regex on versions.

pip-audit is run only on exact pins (``name==version``) with ``--no-deps --disable-pip``: it
never resolves or installs anything, so auditing cannot run a package's build code. Its
advisory sources (PyPI's JSON API, OSV) are online services; when none answers, the result
says ``"skipped": true`` with the reason instead of pretending the dependencies are clean.
"""

from __future__ import annotations

import json
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import dump_findings, files_under, run_tool
from mcphive.types import Finding

__all__ = ["TOOLS", "DeclaredRequirement", "declared_requirements", "dependency_audit", "dependency_pins"]

_BOUNDING_OPERATORS = frozenset({"<", "<=", "~=", "==", "==="})
_NETWORK_ERRORS = re.compile(
    r"ConnectionError|Max retries exceeded|NameResolutionError|Temporary failure in name resolution|"
    r"Failed to establish a new connection|Network is unreachable|timed out|ServiceError",
    re.IGNORECASE,
)
_UNREACHABLE = "advisory database unreachable; run with network access or point pip-audit at a local advisory DB"


@dataclass(frozen=True)
class DeclaredRequirement:
    """One dependency as a project declares it: where, and the parsed requirement."""

    file: str
    line: int
    requirement: Requirement

    @property
    def exact_version(self) -> str | None:
        """The version when pinned exactly (``==1.2.3``, not ``==1.*``), else None."""
        specs = list(self.requirement.specifier)
        for spec in specs:
            if spec.operator in ("==", "===") and "*" not in spec.version:
                return spec.version
        return None


def _is_requirements_file(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name.startswith("requirements") and name.endswith(".txt")


def _from_requirements_txt(rel: str, text: str) -> tuple[list[DeclaredRequirement], list[dict[str, Any]]]:
    found: list[DeclaredRequirement] = []
    invalid: list[dict[str, Any]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        # Options (-r, -e, --hash...) and bare URLs are pip's business, not a version pin.
        if not line or line.startswith(("#", "-")) or "://" in line.split(";")[0].split("@")[0]:
            continue
        try:
            found.append(DeclaredRequirement(rel, number, Requirement(line.rstrip("\\").strip())))
        except InvalidRequirement as e:
            invalid.append({"file": rel, "line": number, "reason": str(e)})
    return found, invalid


def _line_of(lines: list[str], text: str) -> int:
    needle = json.dumps(text)[1:-1]
    for number, line in enumerate(lines, 1):
        if needle in line:
            return number
    return 1


def _from_pyproject(rel: str, text: str) -> tuple[list[DeclaredRequirement], list[dict[str, Any]]]:
    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError as e:
        return [], [{"file": rel, "line": None, "reason": f"not valid TOML: {e}"}]
    entries = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        entries.extend(extra)
    lines = text.splitlines()
    found: list[DeclaredRequirement] = []
    invalid: list[dict[str, Any]] = []
    for entry in entries:
        try:
            found.append(DeclaredRequirement(rel, _line_of(lines, entry), Requirement(entry)))
        except InvalidRequirement as e:
            invalid.append({"file": rel, "line": _line_of(lines, entry), "reason": str(e)})
    return found, invalid


def declared_requirements(jail: Jail, path: str = ".") -> tuple[list[DeclaredRequirement], list[dict[str, Any]]]:
    """Every dependency declared under ``path``, and the entries that did not parse."""
    found: list[DeclaredRequirement] = []
    invalid: list[dict[str, Any]] = []
    for rel in files_under(jail, path, (".txt", ".toml")):
        if _is_requirements_file(rel):
            parsed = _from_requirements_txt(rel, jail.resolve(rel).read_text("utf-8", errors="replace"))
        elif PurePosixPath(rel).name == "pyproject.toml":
            parsed = _from_pyproject(rel, jail.resolve(rel).read_text("utf-8", errors="replace"))
        else:
            continue
        found.extend(parsed[0])
        invalid.extend(parsed[1])
    return found, invalid


def _pin_finding(dep: DeclaredRequirement) -> Finding | None:
    req = dep.requirement
    if req.url:
        return None
    operators = {spec.operator for spec in req.specifier}
    if not operators:
        rule, severity, what = "unpinned-requirement", "medium", "has no version constraint at all"
    elif operators & _BOUNDING_OPERATORS:
        return None
    else:
        rule, severity, what = "unbounded-requirement", "low", f"has no upper bound ({req.specifier})"
    return Finding(
        file=dep.file,
        line=dep.line,
        rule=rule,
        severity=severity,
        message=f"{req.name} {what}: a new release can change the build without any change here",
        fix=f"pin it ({req.name}==X.Y.Z, in a lock or constraints file) or bound it ({req.name}>=X,<Y)",
        tool="packaging",
    )


def dependency_pins(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Find dependencies (requirements*.txt, pyproject.toml) with no version constraint or no upper bound."""
    declared, invalid = declared_requirements(jail, path)
    findings = [f for f in (_pin_finding(dep) for dep in declared) if f is not None]
    return {
        "findings": dump_findings(findings),
        "requirements": len(declared),
        "invalid": invalid,
        "summary": f"dependency pins: {len(findings)} of {len(declared)} requirements unpinned or unbounded",
    }


def _audit_result(pinned: dict[str, DeclaredRequirement], report: dict[str, Any]) -> tuple[list[Finding], int]:
    findings: list[Finding] = []
    skipped = 0
    for dep in report.get("dependencies", []):
        if dep.get("skip_reason"):
            skipped += 1
            continue
        declared = pinned.get(str(dep.get("name", "")).lower())
        for vuln in dep.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions", []))
            findings.append(
                Finding(
                    file=declared.file if declared else "requirements.txt",
                    line=declared.line if declared else None,
                    rule=str(vuln.get("id", "vulnerability")),
                    severity="high",
                    message=f"{dep.get('name')} {dep.get('version')}: {str(vuln.get('description', ''))[:300]}",
                    fix=f"upgrade to {fixes}" if fixes else "no fixed release yet; consider replacing it",
                    tool="pip-audit",
                )
            )
    return findings, skipped


def _run_pip_audit(pinned: dict[str, DeclaredRequirement], cwd: Path) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory(prefix="mcphive-audit-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        lines = [f"{dep.requirement.name}=={dep.exact_version}" for dep in pinned.values()]
        requirements.write_text("\n".join(lines) + "\n", "utf-8")
        argv = ["pip-audit", "-r", str(requirements), "--no-deps", "--disable-pip", "--format", "json"]
        completed = run_tool([*argv, "--progress-spinner", "off"], cwd=cwd, timeout=180)
    return completed.returncode, completed.stdout, completed.stderr


def dependency_audit(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Check exactly pinned dependencies for known vulnerabilities with pip-audit (needs its advisory service)."""
    declared, _ = declared_requirements(jail, path)
    pinned = {dep.requirement.name.lower(): dep for dep in declared if dep.exact_version}
    not_audited = sorted({dep.requirement.name for dep in declared if not dep.exact_version})
    base: dict[str, Any] = {"findings": [], "audited": sorted(pinned), "not_audited": not_audited, "skipped": False}
    if not pinned:
        return {**base, "summary": f"pip-audit: no exactly pinned requirements under {path!r} to audit"}
    returncode, stdout, stderr = _run_pip_audit(pinned, jail.root)
    try:
        report = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    if report is None:
        if _NETWORK_ERRORS.search(stderr):
            return {**base, "skipped": True, "reason": _UNREACHABLE, "summary": f"pip-audit skipped: {_UNREACHABLE}"}
        raise ToolError(f"pip-audit failed (exit {returncode}): {stderr.strip()[-500:]}")
    findings, skipped = _audit_result(pinned, report)
    if skipped and skipped == len(report.get("dependencies", [])):
        return {**base, "skipped": True, "reason": _UNREACHABLE, "summary": f"pip-audit skipped: {_UNREACHABLE}"}
    return {
        **base,
        "findings": dump_findings(findings),
        "summary": f"pip-audit: {len(findings)} known vulnerabilities in {len(pinned)} pinned requirements"
        + (f" ({skipped} not found in the advisory service)" if skipped else ""),
    }


TOOLS = [
    ToolDef(
        "dependency_pins",
        dependency_pins,
        "Find dependencies in requirements*.txt and pyproject.toml with no version constraint or no upper bound.",
        file_args={"path": (".txt", ".toml", "/")},
    ),
    ToolDef(
        "dependency_audit",
        dependency_audit,
        "Check pinned dependencies for known vulnerabilities (CVE/GHSA/PYSEC) with pip-audit.",
        file_args={"path": (".txt", ".toml", "/")},
    ),
]
