"""Turn tool output into compact, clearly delimited text for a model's context.

Tool output is untrusted data: it is wrapped in ``<tool-output>`` tags, tag look-alikes inside it
are neutralised, and it is cut to a budget so a huge log never floods a small model's window.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["as_data", "digest"]


def _finding_line(finding: dict[str, Any]) -> str:
    where = finding.get("file", "?")
    if finding.get("line"):
        where += f":{finding['line']}"
    return f"- {where} [{finding.get('rule', '')}] {finding.get('message', '')}".strip()


def digest(structured: dict[str, Any] | None, text: str, *, max_findings: int = 12) -> str:
    """A short plain-text rendering: the tool's summary and its first findings."""
    if not structured:
        return text
    lines: list[str] = []
    if structured.get("summary"):
        lines.append(str(structured["summary"]))
    findings = structured.get("findings") or []
    lines.extend(_finding_line(f) for f in findings[:max_findings] if isinstance(f, dict))
    if len(findings) > max_findings:
        lines.append(f"... and {len(findings) - max_findings} more findings")
    lines.extend(
        f"- {m.get('file')}:{m.get('line')} {m.get('text', '')}"
        for m in (structured.get("matches") or [])[:max_findings]
    )
    if structured.get("text"):
        lines.append(str(structured["text"]))
    if not lines:
        lines.append(json.dumps(structured, default=str))
    return "\n".join(lines)


def as_data(tool: str, body: str, *, budget: int = 2000) -> str:
    """Wrap ``body`` as delimited, inert data from ``tool``, cut to ``budget`` characters."""
    inert = body.replace("<tool-output", "<tool_output").replace("</tool-output", "</tool_output")
    if len(inert) > budget:
        inert = inert[:budget] + f"\n... [{len(inert) - budget} characters cut]"
    return f'<tool-output tool="{tool}">\n{inert}\n</tool-output>'
