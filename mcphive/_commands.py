"""The CLI's command implementations (``cli.py`` parses; these call the SDK and render)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.text import Text

from mcphive.settings import Settings, load_settings
from mcphive.types import Plan, Route, TaskResult, TaskStatus

__all__ = [
    "agents",
    "approve",
    "demo",
    "doctor",
    "history",
    "ingest",
    "install",
    "pool",
    "reject",
    "route",
    "run",
    "search",
    "serve",
    "worker",
]

# markup=False: what is printed is often the user's (task text, paths, tool arguments, documents), and
# rich would read "[i]" or "[/etc]" in it as markup — dropping text or raising MarkupError. Styles are
# given as style= or Text instead.
out = Console(soft_wrap=False, markup=False)
if not out.is_terminal and "COLUMNS" not in os.environ:
    # Piped reports are read in files and logs: wide enough that paths and rule ids are not cut.
    out = Console(soft_wrap=False, width=160, markup=False)
err = Console(stderr=True, soft_wrap=False, markup=False)


def _settings(args: argparse.Namespace) -> Settings:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return load_settings(args.config, data_dir=args.data_dir, model=args.model)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


async def _follow(hive: Any, task_id: str) -> None:
    from mcphive._report import progress_line

    async for event in hive.events(task_id):
        line = progress_line(event)
        if line:
            err.print(line, style="dim", highlight=False)


def run(args: argparse.Namespace) -> int:
    """``mcphive run TEXT``: run one task with a live progress display, then print its report."""
    from mcphive._report import render_result
    from mcphive.hive import Hive

    settings = _settings(args)

    async def go() -> TaskResult:
        async with Hive.open(settings, on_approval=_ask_approval(settings)) as hive:
            hive.model()  # a missing key or URL is a one-line usage error before anything is queued
            handle = await hive.submit(args.text, workspace=args.workspace, agent=args.agent, priority=args.priority)
            async with anyio.create_task_group() as tg:
                if not args.json:
                    tg.start_soon(_follow, hive, handle.id)
                result = await handle.wait()
            return result

    result = anyio.run(go)
    if args.json:
        _print_json(result.model_dump(mode="json"))
    else:
        render_result(result, out)
    if result.status is not TaskStatus.SUCCEEDED:
        err.print(f"mcphive: task {result.status.value}: {result.error}", highlight=False)
        return 1
    return 0


def _ask_approval(settings: Settings) -> Any:
    """``mcphive run``'s answer to a task awaiting approval: ask on the terminal, or say how to decide."""
    from mcphive.types import ApprovalDecision, ApprovalRequest

    async def ask(request: ApprovalRequest) -> ApprovalDecision | bool | None:
        call = f"{request.tool}({', '.join(f'{k}={v!r}' for k, v in request.arguments.items())})"
        if sys.stdin.isatty():
            answer = await anyio.to_thread.run_sync(input, f"approve {call[:400]}? [y/N] ")
            return answer.strip().lower() in ("y", "yes")
        if settings.queue == "memory":
            # Nothing outside this process can reach an in-memory queue, so nobody else could decide.
            return ApprovalDecision(approved=False, by=settings.user, reason="no terminal to ask for approval")
        err.print(f"task {request.task_id} awaits approval of {call[:200]}: run `mcphive approve "
                  f"{request.task_id[:12]}` or `mcphive reject {request.task_id[:12]}`", highlight=False)  # fmt: skip
        return None

    return ask


def route(args: argparse.Namespace) -> int:
    """``mcphive route TEXT [--explain]`` or ``mcphive route --correct TASK_ID AGENT``."""
    from mcphive._report import render_route
    from mcphive.errors import UsageError
    from mcphive.hive import Hive

    if (args.text is None) == (args.correct is None):
        raise UsageError("give either the task text to route or --correct TASK_ID AGENT")
    settings = _settings(args)

    async def go() -> tuple[Any, Plan | None]:
        async with Hive.open(settings, workers=1) as hive:
            if args.correct:
                await hive.correct(*args.correct)
                return None, None
            answer = await hive.explain(args.text) if args.explain else await hive.route(args.text)
            return answer, await hive.plan(args.text)

    answer, plan = anyio.run(go)
    if args.correct:
        err.print(f"learned: tasks like {args.correct[0]} go to {args.correct[1]}", highlight=False)
        return 0
    if args.json:
        data = answer if isinstance(answer, dict) else answer.model_dump(mode="json")
        _print_json(data | ({"plan": plan.model_dump(mode="json")} if plan is not None else {}))
        return 0
    if isinstance(answer, dict):
        out.print(render_route(Route(**answer["route"])), highlight=False)
        for c in answer["scores"]:
            out.print(f"  {c['agent']:<10}{c['score']:.3f}", highlight=False)
        out.print(f"  out of scope below {answer['threshold']:.2f}", highlight=False)
    else:
        out.print(render_route(answer), highlight=False)
    if plan is not None:  # what `mcphive run` would do with it: the router's single answer is not the whole story
        out.print(f"as a task, it runs as a plan of {len(plan.steps)} steps:", highlight=False)
        for step in plan.steps:
            how = f", {step.route.stage} {step.route.confidence:.2f}" if step.route is not None else ""
            out.print(f"  {step.label()}{how}: {step.goal}", highlight=False)
    return 0


def agents(args: argparse.Namespace) -> int:
    """``mcphive agents``: the specialists, their tools and survey."""
    from rich.table import Table

    from mcphive.agents.spec import specs_for

    settings = _settings(args)  # [[agents]] from the config are specialists too
    tools: set[str] = set()
    if settings.agents:  # only they are checked against the tool names, which take the heavy imports
        from mcphive.hive import known_tools

        tools = known_tools()
    specs = specs_for(settings.agents, tools, settings.mcp_servers)
    if args.json:
        _print_json(
            [
                {
                    "name": s.name,
                    "description": s.description,
                    "survey": [c.tool for c in s.survey],
                    "tools": list(s.tools),
                }
                for s in specs.values()
            ]
        )
        return 0
    table = Table(title="mcphive agents")
    for column in ("agent", "what it does", "survey", "tools"):
        table.add_column(column)
    for s in specs.values():
        table.add_row(s.name, s.description, ", ".join(c.tool for c in s.survey), ", ".join(s.tools))
    out.print(table)
    return 0


def history(args: argparse.Namespace) -> int:
    """``mcphive history [TASK_ID]``: recent tasks, or one task in full."""
    from rich.table import Table

    from mcphive._report import render_result
    from mcphive.memory import EpisodicMemory

    settings = _settings(args)
    memory = EpisodicMemory.open(settings.database_url)
    try:
        if args.task_id:

            async def one() -> TaskResult | None:
                return await memory.get(await memory.resolve_id(args.task_id))

            result = anyio.run(one)
            assert result is not None
            if args.json:
                _print_json(result.model_dump(mode="json"))
            else:
                render_result(result, out)
            return 0
        rows = anyio.run(memory.recent, args.limit)
    finally:
        memory.close()
    if args.json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return 0
    table = Table(title="recent tasks")
    for column in ("id", "when", "agent", "status", "task"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.id[:12],
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"plan ({r.subtasks})" if r.subtasks else r.agent or "—",
            r.status.value,
            r.text[:70],
        )
    out.print(table)
    return 0


def approve(args: argparse.Namespace) -> int:
    """``mcphive approve TASK_ID``: let a task awaiting approval make its writing call."""
    return _decide(args, approved=True)


def reject(args: argparse.Namespace) -> int:
    """``mcphive reject TASK_ID [--reason]``: refuse a task's writing call; the task goes on without it."""
    return _decide(args, approved=False)


def _decide(args: argparse.Namespace, *, approved: bool) -> int:
    from mcphive.hive import Hive

    settings = _settings(args)

    async def go() -> Any:
        async with Hive.open(settings, workers=0) as hive:
            if approved:
                return await hive.approve(args.task_id, reason=args.reason)
            return await hive.reject(args.task_id, args.reason)

    request = anyio.run(go)
    if args.json:
        _print_json({**request.model_dump(mode="json"), "approved": approved, "by": settings.user})
    else:
        verb = "approved" if approved else "rejected"
        err.print(f"{verb}: {request.tool} on {request.server} for task {request.task_id}", highlight=False)
    return 0


def ingest(args: argparse.Namespace) -> int:
    """``mcphive ingest PATH``: chunk, embed and store documents for ``search_docs``."""
    from mcphive._rag_cli import ingest_path

    report = ingest_path(_settings(args), Path(args.path))
    if args.json:
        _print_json(report.model_dump(mode="json"))
    else:
        out.print(
            f"ingested {report.files} files as {report.chunks} chunks; skipped {len(report.skipped)}", highlight=False
        )
        shown = 10
        for skipped in report.skipped[:shown]:
            out.print(f"  skipped {skipped.path}: {skipped.reason}", highlight=False)
        if len(report.skipped) > shown:
            out.print(f"  ... and {len(report.skipped) - shown} more (--json lists them all)", highlight=False)
    return 0


def search(args: argparse.Namespace) -> int:
    """``mcphive search QUERY``: hybrid search over the RAG store."""
    from mcphive._rag_cli import search_store

    hits = search_store(_settings(args), args.query, args.k)
    if args.json:
        _print_json([h.model_dump(mode="json") for h in hits])
        return 0
    for hit in hits:
        out.print(Text.assemble((f"{hit.source}:{hit.start_line}-{hit.end_line}", "bold"), f"  score {hit.score:.3f}"))
        out.print("  " + hit.text[:300].replace("\n", "\n  "), highlight=False)
    if not hits:
        out.print("no results; run `mcphive ingest PATH` first")
    return 0


def serve(args: argparse.Namespace) -> int:
    """``mcphive serve``: the gateway (or one substrate server) over stdio."""
    from mcphive._serve import serve_http_servers, serve_stdio

    settings = _settings(args)
    if args.http:
        anyio.run(serve_http_servers, settings, args.http, args.root, lambda line: err.print(line, highlight=False))
    else:
        anyio.run(serve_stdio, settings, args.server, args.root)
    return 0


def install(args: argparse.Namespace) -> int:
    """``mcphive install claude-desktop``: print or merge the Claude Desktop config entry."""
    from mcphive._claude import claude_desktop_entry, default_config_path, merge_config, merged_config

    settings = _settings(args)
    entry = claude_desktop_entry(settings, config=args.config)
    path = Path(args.config_file) if args.config_file else default_config_path()
    if args.dry_run:  # the whole file as --write would leave it
        _print_json(merged_config(path, "mcphive", entry))
        err.print(f"dry run: nothing written to {path}", highlight=False)
        return 0
    if not args.write:
        _print_json({"mcpServers": {"mcphive": entry}})
        return 0
    merge_config(path, "mcphive", entry)
    err.print(f"wrote the mcphive entry into {path}; restart Claude Desktop to load it", highlight=False)
    return 0


def doctor(args: argparse.Namespace) -> int:
    """``mcphive doctor``: which backends, stores and models are available, and why not."""
    from rich.table import Table

    from mcphive._doctor import run_checks

    checks = run_checks(_settings(args))
    if args.json:
        _print_json([c.__dict__ for c in checks])
    else:
        table = Table(title="mcphive doctor")
        for column in ("part", "ok", "detail"):
            table.add_column(column)
        for c in checks:
            table.add_row(c.name, Text("yes", style="green") if c.ok else Text("no", style="red"), c.detail)
        out.print(table)
    return 0 if all(c.ok or not c.required for c in checks) else 1


def demo(args: argparse.Namespace) -> int:
    """``mcphive demo``: the six agents on a fresh copy of the bundled example project."""
    from mcphive._demo import run_demo

    return run_demo(_settings(args), keep=args.keep, as_json=args.json, console=out, progress=err)


def worker(args: argparse.Namespace) -> int:
    """``mcphive worker``: claim tasks from the durable queue and run them until interrupted."""
    from mcphive.errors import UsageError
    from mcphive.hive import Hive

    settings = _settings(args)
    if settings.queue == "memory":
        raise UsageError("mcphive worker needs a durable queue; set queue = 'sqlite' (or 'postgres' with queue_url)")
    settings = settings.model_copy(update={"workers": args.concurrency})

    async def go() -> None:
        async with Hive.open(settings) as hive:
            err.print(f"worker ready: {args.concurrency} at once from {settings.queue_database_url}", highlight=False)
            await hive.serve_forever()

    anyio.run(go)
    return 0


def pool(args: argparse.Namespace) -> int:
    """``mcphive pool up|status|serve``: run, inspect or front a pool of model servers."""
    from mcphive import _pool_cli as p
    from mcphive._serve import _host_port

    settings = _settings(args)

    def say(line: str) -> None:
        err.print(line, highlight=False)

    if args.pool_command == "up":
        return p.pool_up(settings, args.members, command=args.server_command, model=args.model_id,
                         base_port=args.base_port, say=say)  # fmt: skip
    if args.pool_command == "status":
        rows = p.pool_status(settings, args.front)
        if args.json:
            _print_json(rows)
        else:
            out.print(p.format_status(rows), highlight=False)
        return 0
    host, port = _host_port(args.http)
    p.pool_serve(settings, host, port, say=say)
    return 0
