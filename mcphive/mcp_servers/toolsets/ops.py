"""The ops agent's toolset: summarise application logs and find error bursts.

Pure Python, no dependencies. A line that starts with a timestamp (ISO-8601, or syslog's
``May 14 10:00:03``) followed, within a few tokens, by a level word starts a log entry; other
lines (tracebacks) continue the entry above. Messages are clustered into *signatures* by
replacing the parts that vary between occurrences (numbers, hex ids, UUIDs, quoted values), so
forty ``upstream timeout (request_id=...)`` errors count as one problem seen forty times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import Severity, dump_findings, files_under
from mcphive.types import Finding

__all__ = ["TOOLS", "log_summary", "normalise_message"]

MAX_LINES = 500_000
"""Lines read per file; a larger log is summarised from its beginning (the result says so)."""

_TIMESTAMP = (
    r"(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"|(?P<syslog>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})"
)
_LEVEL = r"TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|FATAL|SEVERE"
# Level words are matched in capitals only (``level=error`` excepted), so that "error" inside a
# message never passes for a level.
_ENTRY = re.compile(
    rf"^(?:(?:ts|time|timestamp)=)?\[?(?:{_TIMESTAMP})\]?[\s|]+(?:\S+\s+){{0,3}}?"
    rf"(?:level=(?P<logfmt>[A-Za-z]+)|\[?(?P<level>{_LEVEL})\b\]?:?)\s*(?:[-|:]\s+)?(?P<message>.*)$"
)
_LEVEL_NAMES = {"WARN": "WARNING", "ERR": "ERROR", "FATAL": "CRITICAL", "SEVERE": "CRITICAL"}
_REPORTED: dict[str, tuple[str, Severity]] = {
    "WARNING": ("warning-signature", "low"),
    "ERROR": ("error-signature", "medium"),
    "CRITICAL": ("error-signature", "high"),
}
_VARIABLE_PARTS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE), "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


def normalise_message(message: str) -> str:
    """A message with the parts that differ between occurrences replaced by placeholders."""
    for pattern, placeholder in _VARIABLE_PARTS:
        message = pattern.sub(placeholder, message)
    return " ".join(message.split())[:200]


@dataclass
class _Cluster:
    level: str
    signature: str
    example: str
    lines: list[int] = field(default_factory=list)
    times: list[datetime | None] = field(default_factory=list)


def _parse_time(match: re.Match[str]) -> datetime | None:
    try:
        if match["iso"]:
            text = match["iso"].replace(",", ".").replace("Z", "+00:00")
            moment = datetime.fromisoformat(text)
        else:  # syslog has no year; only differences between times matter here
            moment = datetime.strptime(match["syslog"], "%b %d %H:%M:%S")
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class _FileSummary:
    file: str
    levels: dict[str, int] = field(default_factory=dict)
    clusters: dict[tuple[str, str], _Cluster] = field(default_factory=dict)
    entries: int = 0
    continuation_lines: int = 0
    unparsed_lines: int = 0
    truncated: bool = False


def _scan(jail: Jail, rel: str) -> _FileSummary:
    summary = _FileSummary(rel)
    with jail.resolve(rel).open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, 1):
            if number > MAX_LINES:
                summary.truncated = True
                break
            match = _ENTRY.match(raw.rstrip("\n"))
            if match is None:
                if summary.entries:
                    summary.continuation_lines += 1
                elif raw.strip():
                    summary.unparsed_lines += 1
                continue
            summary.entries += 1
            level = (match["level"] or match["logfmt"]).upper()
            level = _LEVEL_NAMES.get(level, level)
            summary.levels[level] = summary.levels.get(level, 0) + 1
            if level in _REPORTED:
                signature = normalise_message(match["message"])
                cluster = summary.clusters.setdefault(
                    (level, signature), _Cluster(level, signature, match["message"].strip()[:300])
                )
                cluster.lines.append(number)
                cluster.times.append(_parse_time(match))
    return summary


def _episodes(cluster: _Cluster, window: float) -> list[list[tuple[datetime, int]]]:
    """Occurrences split wherever two consecutive ones are more than ``window`` seconds apart."""
    timed = sorted((t, line) for t, line in zip(cluster.times, cluster.lines, strict=True) if t is not None)
    episodes: list[list[tuple[datetime, int]]] = []
    for moment, line in timed:
        if episodes and (moment - episodes[-1][-1][0]).total_seconds() <= window:
            episodes[-1].append((moment, line))
        else:
            episodes.append([(moment, line)])
    return episodes


def _densest(episode: list[tuple[datetime, int]], window: float) -> int:
    """The most occurrences of an episode that fit in one window of ``window`` seconds."""
    best, start = 0, 0
    for end in range(len(episode)):
        while (episode[end][0] - episode[start][0]).total_seconds() > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _burst_findings(summary: _FileSummary, cluster: _Cluster, threshold: int, window: float) -> list[Finding]:
    findings = []
    for episode in _episodes(cluster, window):
        if _densest(episode, window) < threshold:
            continue
        first, last = episode[0][0], episode[-1][0]
        seconds = (last - first).total_seconds()
        findings.append(
            Finding(
                file=summary.file,
                line=episode[0][1],
                rule="error-burst",
                severity="high" if cluster.level != "WARNING" else "medium",
                message=f"{len(episode)} x {cluster.level} '{cluster.signature}' within {seconds:.0f} s "
                f"({first.isoformat()} to {last.isoformat()})",
                fix="find what failed when the burst began (dependency, deploy, load); add backoff or a breaker",
                tool="log_summary",
            )
        )
    return findings


def _cluster_finding(summary: _FileSummary, cluster: _Cluster) -> Finding:
    rule, severity = _REPORTED[cluster.level]
    known = [t for t in cluster.times if t is not None]
    span = f" (first {min(known).isoformat()}, last {max(known).isoformat()})" if known else ""
    return Finding(
        file=summary.file,
        line=cluster.lines[0],
        rule=rule,
        severity=severity,
        message=f"{len(cluster.lines)} x {cluster.level} '{cluster.signature}'{span}",
        tool="log_summary",
    )


def _signature_row(summary: _FileSummary, cluster: _Cluster) -> dict[str, Any]:
    known = [t for t in cluster.times if t is not None]
    return {
        "file": summary.file,
        "level": cluster.level,
        "signature": cluster.signature,
        "example": cluster.example,
        "count": len(cluster.lines),
        "first_line": cluster.lines[0],
        "first_seen": min(known).isoformat() if known else None,
        "last_seen": max(known).isoformat() if known else None,
    }


def log_summary(
    jail: Jail, path: str = ".", burst_threshold: int = 10, burst_window_seconds: float = 300
) -> dict[str, Any]:
    """Summarise a log file (or every ``.log`` under a folder): counts per level, clustered warning and
    error signatures with first/last seen, and bursts (``burst_threshold`` occurrences of one signature
    within ``burst_window_seconds``)."""
    if burst_threshold < 2 or burst_window_seconds <= 0:
        raise ToolError("burst_threshold must be at least 2 and burst_window_seconds positive")
    findings: list[Finding] = []
    rows: list[dict[str, Any]] = []
    levels: dict[str, int] = {}
    files = []
    for rel in files_under(jail, path, (".log",)):
        summary = _scan(jail, rel)
        files.append(
            {
                "file": rel,
                "entries": summary.entries,
                "continuation_lines": summary.continuation_lines,
                "unparsed_lines": summary.unparsed_lines,
                "truncated": summary.truncated,
            }
        )
        for level, count in summary.levels.items():
            levels[level] = levels.get(level, 0) + count
        for cluster in summary.clusters.values():
            findings.append(_cluster_finding(summary, cluster))
            findings.extend(_burst_findings(summary, cluster, burst_threshold, burst_window_seconds))
            rows.append(_signature_row(summary, cluster))
    rows.sort(key=lambda row: (-row["count"], row["file"], row["first_line"]))
    bursts = sum(1 for f in findings if f.rule == "error-burst")
    counts = ", ".join(f"{levels[k]} {k}" for k in sorted(levels))
    return {
        "findings": dump_findings(findings),
        "levels": levels,
        "signatures": rows[:50],
        "files": files,
        "summary": f"{len(files)} log file(s): {counts or 'no entries'}; {len(rows)} signatures, {bursts} burst(s)",
    }


TOOLS = [
    ToolDef(
        "log_summary",
        log_summary,
        "Summarise logs: counts per level, clustered error and warning signatures with first/last seen, error bursts.",
        file_args={"path": (".log", "/")},
    )
]
