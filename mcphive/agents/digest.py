"""Turn tool output into compact, clearly delimited text for a model's context.

Tool output is untrusted data: it is wrapped in ``<tool-output>`` tags, tag look-alikes inside it
are neutralised, and it is cut to a budget so a huge log never floods a small model's window.

A file in the workspace may hold text written to look like instructions ("ignore previous
instructions...") and a forged closing tag to make them appear outside the data. Every spelling
of the tag a lenient reader might honour — any case, spaces or a slash inside the brackets, ``_``
or a space for the dash — is rewritten to ``[tool output]``, so the only tags in a model's context
are the ones :func:`as_data` writes, and the system prompt says that what is between them is data.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["as_data", "digest"]

_TAG_LOOKALIKE = re.compile(r"<\s*/?\s*tool[\s_-]*output[^>]*>?", re.IGNORECASE)
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_.-]")


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
    """Wrap ``body`` as delimited, inert data from ``tool``, cut to ``budget`` characters.

    Tag look-alikes in ``body`` are neutralised before the cut, so a cut can never leave half a
    forged tag; the tool name is reduced to name characters, so it cannot end the opening tag.
    """
    inert = _TAG_LOOKALIKE.sub("[tool output]", body)
    if len(inert) > budget:
        inert = inert[:budget] + f"\n... [{len(inert) - budget} characters cut]"
    return f'<tool-output tool="{_TOOL_NAME.sub("_", tool)}">\n{inert}\n</tool-output>'
