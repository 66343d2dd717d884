"""Rendering for the CLI: task reports, routes, history and live progress lines (with rich)."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mcphive.router.events import describe
from mcphive.router.plan_runner import goal_of
from mcphive.types import Event, Route, TaskResult

__all__ = ["progress_line", "render_result", "render_route"]


def render_route(route: Route) -> str:
    """One line: agent, stage, confidence and the runners-up."""
    if route.stage == "plan":
        return f"plan of {route.reason}"
    runners = ", ".join(f"{c.agent} {c.score:.2f}" for c in route.runners_up)
    target = route.agent or "nobody (out of scope)"
    return f"{target} — {route.stage}, confidence {route.confidence:.2f}" + (
        f"; runners-up: {runners}" if runners else ""
    )


def _plain(*cells: str) -> list[Text]:
    """Table cells shown as they are: tool arguments, paths and messages are never read as rich markup."""
    return [Text(cell) for cell in cells]


def _steps_table(result: TaskResult) -> Table:
    table = Table(title="steps", title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("chosen by")
    table.add_column("tool", no_wrap=True)
    table.add_column("arguments", overflow="fold")
    table.add_column("outcome", overflow="fold")
    table.add_column("ms", justify="right")
    for step in result.steps:
        for call in step.tool_calls:
            summary = (call.structured or {}).get("summary", "")
            outcome = f"error: {call.result[:100]}" if call.is_error else str(summary)[:100]
            args = ", ".join(f"{k}={v}" for k, v in call.arguments.items())
            table.add_row(
                *_plain(str(step.index + 1), call.chosen_by, call.tool, args, outcome, f"{call.duration_ms:.0f}")
            )
    return table


def _findings_table(result: TaskResult, limit: int = 60) -> Table:
    findings = result.findings  # de-duplicated, most severe first; a plan's hold every step's (outcome.fill_outcome)
    table = Table(title=f"findings ({len(findings)})", title_justify="left", expand=False)
    table.add_column("severity")
    table.add_column("where", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("message", overflow="ellipsis", no_wrap=True, max_width=60)
    table.add_column("tool", no_wrap=True)
    for f in findings[:limit]:
        where = f"{f.file}:{f.line}" if f.line else f.file
        table.add_row(*_plain(f.severity, where, f.rule, " ".join(f.message.split()), f.tool))
    if len(findings) > limit:
        table.caption = f"{len(findings) - limit} more findings (use --json for all)"
    return table


def render_result(result: TaskResult, console: Console) -> None:
    """Print a task's full report: header, steps (a plan's: each subtask's), findings, the model's answer, costs."""
    who = "plan" if result.subtasks else f"{result.agent or '-'} agent"
    console.rule(Text.assemble((who, "bold"), f": {result.text}"), align="left")
    console.print(Text.assemble(f"task {result.task_id}  ·  status ", (result.status.value, "bold")))
    if result.route is not None:
        console.print(f"route: {render_route(result.route)}", highlight=False, markup=False)
    if result.steps:
        console.print(_steps_table(result))
    for index, sub in enumerate(result.subtasks, 1):
        goal = goal_of(sub.text).splitlines()[0] if sub.text else ""
        route = f" ({sub.route.stage}, {sub.route.confidence:.2f})" if sub.route is not None else ""
        line = f"s{index} · {sub.agent or '-'} agent{route}: {goal}  ·  {sub.status.value}"
        console.print(Text(line, style="bold"))
        if sub.steps:
            console.print(_steps_table(sub))
        if sub.error:
            console.print(Text.assemble(("  error:", "red"), f" {sub.error}"))
    if result.steps or result.subtasks:
        console.print(_findings_table(result))
    if result.answer:
        console.print(
            Panel(Text(result.answer), title=Text(f"model summary ({result.model or 'model'})"), expand=False)
        )
    if result.error:
        console.print(Text.assemble(("error:", "red"), f" {result.error}"))
    usage = result.usage
    total_s = result.timings.get("total_ms", 0.0) / 1000
    console.print(
        f"{usage.model_calls} model calls, {usage.input_tokens} tokens in / {usage.output_tokens} out; {total_s:.1f} s",
        style="dim",
        highlight=False,
        markup=False,
    )


def progress_line(event: Event) -> str | None:
    """A short line for the live progress display, or None for events not worth a line."""
    line = describe(event, detail=True)
    return None if line is None else ("  " + line if event.kind in ("tool_call", "model") else line)
