"""The security agent's toolset: hard-coded secrets (detect-secrets) and insecure Python (bandit).

Secret values never leave this module: a finding names the secret's type, file and line and a
short prefix of its SHA-1 hash (the same hash detect-secrets baselines use), so a person can
match findings across runs without the tool output itself leaking the credential. Bandit's
messages quote source literals (``Possible hardcoded password: '...'``), so quoted text in them is
redacted too, and bandit's code excerpts are dropped.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import PurePosixPath
from typing import Any

from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import SKIP_DIRS, Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import (
    Severity,
    dump_findings,
    existing_path,
    files_under,
    relative_or_none,
    run_tool,
)
from mcphive.types import Finding

__all__ = ["TOOLS", "bandit_scan", "secret_scan"]

MAX_SCAN_BYTES = 5_000_000
"""Larger files (data dumps, bundles) are skipped by the secret scan."""

# detect-secrets keeps its plugin settings in process-wide globals; two scans in two worker
# threads at once would reconfigure each other's plugins.
_SETTINGS_LOCK = threading.Lock()
_SEVERITY: dict[str, Severity] = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_TEST_DIRS = frozenset({"tests", "test"})


def secret_scan(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Find hard-coded credentials (API keys, passwords, private keys, tokens) with detect-secrets; values redacted."""
    files = [rel for rel in files_under(jail, path) if jail.resolve(rel).stat().st_size <= MAX_SCAN_BYTES]
    collection = SecretsCollection(root=str(jail.root))
    with _SETTINGS_LOCK, default_settings():
        for rel in files:
            collection.scan_file(rel)
    findings = [
        Finding(
            file=PurePosixPath(filename).as_posix(),
            line=secret.line_number or None,
            rule=secret.type,
            severity="high",
            message=f"possible {secret.type} (value redacted; sha1 {secret.secret_hash[:8]})",
            fix="remove it from the file, rotate the credential, and read it from the environment or a secrets manager",
            tool="detect-secrets",
        )
        for filename, secrets in collection.data.items()
        for secret in secrets
    ]
    return {
        "findings": dump_findings(findings),
        "files_scanned": len(files),
        "summary": f"detect-secrets: {len(findings)} possible secrets in {len(files)} files under {path!r}",
    }


def _is_test_path(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return bool(_TEST_DIRS.intersection(parts[:-1])) or parts[-1].startswith("test_") or parts[-1] == "conftest.py"


def _bandit_finding(jail: Jail, item: dict[str, Any]) -> Finding | None:
    file = relative_or_none(jail, item.get("filename", ""), jail.root)
    test_id = str(item.get("test_id", "bandit"))
    # pytest's assert statements are how tests work, not a security problem.
    if file is None or (test_id == "B101" and _is_test_path(file)):
        return None
    text = _QUOTED.sub("'<redacted>'", str(item.get("issue_text", "")))
    confidence = str(item.get("issue_confidence", "")).lower()
    return Finding(
        file=file,
        line=item.get("line_number"),
        rule=test_id,
        severity=_SEVERITY.get(str(item.get("issue_severity", "")).upper(), "medium"),
        message=f"{text} [{item.get('test_name', '')}, confidence {confidence}]",
        fix=item.get("more_info"),
        tool="bandit",
    )


def bandit_scan(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Find insecure Python (shell=True, pickle, weak hashes, hard-coded passwords...) with bandit."""
    existing_path(jail, path)
    excluded = ",".join(f"/{name}/" for name in sorted(SKIP_DIRS))
    completed = run_tool(["bandit", "-r", "-f", "json", "-q", "-x", excluded, "--", path], cwd=jail.root)
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError as e:
        detail = completed.stderr.strip()[:500]
        raise ToolError(f"bandit did not produce a JSON report (exit {completed.returncode}): {detail}") from e
    findings = [f for f in (_bandit_finding(jail, item) for item in report.get("results", [])) if f is not None]
    errors = [
        {"file": relative_or_none(jail, e.get("filename", ""), jail.root), "reason": e.get("reason", "")}
        for e in report.get("errors", [])
    ]
    return {
        "findings": dump_findings(findings),
        "errors": errors,
        "summary": f"bandit: {len(findings)} issues under {path!r}"
        + (f", {len(errors)} files not parsed" if errors else ""),
    }


TOOLS = [
    ToolDef(
        "secret_scan",
        secret_scan,
        "Find hard-coded secrets (cloud keys, passwords, tokens, private keys) with detect-secrets; values redacted.",
        file_args={"path": ("/",)},
    ),
    ToolDef(
        "bandit_scan",
        bandit_scan,
        "Find insecure Python patterns with bandit: rule id (B602...), severity, confidence, line.",
        file_args={"path": (".py", "/")},
    ),
]
