"""Rendering for the CLI: task reports, routes, history and live progress lines (with rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from mcphive.types import Event, Route, TaskResult

__all__ = ["progress_line", "render_result", "render_route", "result_findings"]

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def result_findings(result: TaskResult) -> list[dict[str, Any]]:
    """Every finding of every tool call, most severe first, each tagged with its tool."""
    found: list[dict[str, Any]] = []
    for call in result.tool_calls:
        for finding in (call.structured or {}).get("findings", []) or []:
            if isinstance(finding, dict):
                found.append({**finding, "tool": finding.get("tool") or call.tool})
    return sorted(
        found, key=lambda f: (_SEVERITY_ORDER.get(f.get("severity", ""), 5), f.get("file", ""), f.get("line") or 0)
    )


def render_route(route: Route) -> str:
    """One line: agent, stage, confidence and the runners-up."""
    runners = ", ".join(f"{c.agent} {c.score:.2f}" for c in route.runners_up)
    target = route.agent or "nobody (out of scope)"
    return f"{target} — {route.stage}, confidence {route.confidence:.2f}" + (
        f"; runners-up: {runners}" if runners else ""
    )


def _steps_table(result: TaskResult) -> Table:
    table = Table(title="Steps", show_lines=False, expand=False)
    for column in ("#", "chosen by", "tool", "arguments", "outcome", "ms"):
        table.add_column(column)
    for step in result.steps:
        for call in step.tool_calls:
            outcome = (
                "error: " + call.result[:80] if call.is_error else str((call.structured or {}).get("summary", ""))[:80]
            )
            args = ", ".join(f"{k}={v}" for k, v in call.arguments.items())
            table.add_row(
                str(step.index + 1), call.chosen_by, call.tool, escape(args), escape(outcome), f"{call.duration_ms:.0f}"
            )
    return table


def _findings_table(result: TaskResult, limit: int = 60) -> Table:
    table = Table(title="Findings", expand=False)
    for column in ("severity", "where", "rule", "message", "tool"):
        table.add_column(column)
    findings = result_findings(result)
    for f in findings[:limit]:
        where = f"{f.get('file', '?')}:{f['line']}" if f.get("line") else str(f.get("file", "?"))
        table.add_row(
            str(f.get("severity", "")),
            escape(where),
            escape(str(f.get("rule", ""))),
            escape(str(f.get("message", ""))[:120]),
            str(f.get("tool", "")),
        )
    if len(findings) > limit:
        table.caption = f"{len(findings) - limit} more findings (use --json for all)"
    return table


def render_result(result: TaskResult, console: Console) -> None:
    """Print a task's full report."""
    header = f"[bold]{escape(result.text)}[/bold]\ntask {result.task_id}  ·  status {result.status.value}"
    if result.route is not None:
        header += f"\nroute: {escape(render_route(result.route))}"
    parts: list[Any] = [header]
    if result.steps:
        parts += [_steps_table(result), _findings_table(result)]
    if result.answer:
        parts.append(Panel(escape(result.answer), title=f"answer ({result.model or 'model'})", expand=False))
    if result.error:
        parts.append(f"[red]error:[/red] {escape(result.error)}")
    usage = result.usage
    total_s = result.timings.get("total_ms", 0.0) / 1000
    parts.append(
        f"[dim]{usage.model_calls} model calls, {usage.input_tokens} tokens in / {usage.output_tokens} out; "
        f"{total_s:.1f} s[/dim]"
    )
    console.print(Panel(Group(*parts), title=f"{result.agent or '—'} agent", expand=False))


def progress_line(event: Event) -> str | None:
    """A short line for the live progress display, or None for events not worth a line."""
    d = event.data
    if event.kind == "routed":
        return f"routed to {d.get('agent') or 'nobody'} ({d.get('stage')}, {d.get('confidence', 0):.2f})"
    if event.kind == "tool_call":
        args = ", ".join(f"{k}={v}" for k, v in d.get("arguments", {}).items())
        return f"  {d.get('chosen_by')}: {d.get('tool')}({args})"
    if event.kind == "model":
        return f"  model: {d.get('purpose')}"
    if event.kind == "finished":
        return f"finished: {d.get('status')}"
    return None
