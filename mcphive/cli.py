"""The ``mcphive`` command line: parses, calls the SDK, renders. Nothing else.

Heavy imports happen inside the command functions so that ``mcphive --help`` stays fast.
Errors print one line (what was wrong, what to do) and exit non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]

EXIT_USAGE, EXIT_RUN, EXIT_INTERRUPTED = 2, 1, 130


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]``, refused with one line naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range; it must be {bound}")
        return value

    return parse


def _add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help="what to do, in plain words")
    p.add_argument("-w", "--workspace", default=".", help="project folder the agents work on (default: .)")
    p.add_argument("-a", "--agent", help="skip routing and use this agent")
    p.add_argument("-p", "--priority", default="normal", choices=["critical", "high", "normal", "low"])


def _add_global_options(parser: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """The options every command takes, before or after its name (``mcphive --json route T`` and
    ``mcphive route T --json`` alike).

    A command's parser declares them again with no default (``SUPPRESS``), so one given after the
    command overrides the top level's and one not given there leaves the top level's in place.
    """
    no_default: dict[str, Any] = {"default": argparse.SUPPRESS} if inherited else {}
    group = parser.add_argument_group("global options (also accepted before the command)") if inherited else parser
    group.add_argument("--config", help="path of an mcphive.toml (default: ./mcphive.toml if present)", **no_default)
    group.add_argument(
        "--data-dir", help="where mcphive keeps its state (default: ~/.local/share/mcphive)", **no_default
    )
    group.add_argument("--model", choices=["auto", "local", "openai", "anthropic"], help="model backend", **no_default)
    group.add_argument("--json", action="store_true", help="print machine-readable JSON", **no_default)
    group.add_argument("--debug", action="store_true", help="show tracebacks and debug logs", **no_default)


class _CommandParser(argparse.ArgumentParser):
    """A command's (or a command's action's) parser: it accepts the global options too."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _add_global_options(self, inherited=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcphive", description="Multi-agent orchestration over MCP.")
    _add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser)

    p = sub.add_parser("run", help="run a task and print the report")
    _add_task_args(p)
    p = sub.add_parser("route", help="show which agent would take a task, or correct a past decision")
    p.add_argument("text", nargs="?", help="the task text to route")
    p.add_argument("--explain", action="store_true", help="show every agent's score and the threshold")
    p.add_argument("--correct", nargs=2, metavar=("TASK_ID", "AGENT"), help="teach the router where a task belonged")
    sub.add_parser("agents", help="list the specialist agents")
    p = sub.add_parser("history", help="list recent tasks, or show one in full")
    p.add_argument("task_id", nargs="?", help="a task id (a unique prefix is enough)")
    p.add_argument("-n", "--limit", type=_int_in(1), default=20)
    p = sub.add_parser("approve", help="approve the writing tool call a task waits on (approval = 'writes')")
    p.add_argument("task_id", help="a task id (a unique prefix is enough)")
    p.add_argument("--reason", default="", help="kept with the decision")
    p = sub.add_parser("reject", help="reject the writing tool call a task waits on; the task goes on without it")
    p.add_argument("task_id", help="a task id (a unique prefix is enough)")
    p.add_argument("--reason", default="", help="told to the agent and kept with the decision")
    p = sub.add_parser("ingest", help="add documents to the RAG store")
    p.add_argument("path")
    p = sub.add_parser("search", help="search the RAG store")
    p.add_argument("query")
    p.add_argument("-k", type=_int_in(1), default=5, help="how many results (default: 5)")
    p = sub.add_parser("serve", help="serve mcphive as an MCP server over stdio (for Claude Desktop)")
    p.add_argument("--server", choices=["gateway", "state", "workspace", "memory", "rag"], default="gateway")
    p.add_argument("--root", help="workspace root for --server workspace (and for --http)")
    p.add_argument(
        "--http", metavar="HOST:PORT", help="serve over streamable HTTP instead of stdio (e.g. 127.0.0.1:8765)"
    )
    p = sub.add_parser("install", help="set up an MCP host")
    p.add_argument("host", choices=["claude-desktop"])
    p.add_argument("--write", action="store_true", help="merge the entry into the config file instead of printing it")
    p.add_argument("--config-file", help="the claude_desktop_config.json to write (default: the platform's)")
    p.add_argument("--dry-run", action="store_true", help="print the merged config file it would write; write nothing")
    _add_pool_parser(sub)
    _add_mcp_parser(sub)
    p = sub.add_parser("worker", help="run tasks from the durable queue (queue = sqlite or postgres) until stopped")
    p.add_argument(
        "-c", "--concurrency", type=_int_in(1), default=2, help="tasks this process runs at once (default: 2)"
    )
    sub.add_parser("doctor", help="which backends, stores and models are available, and why not")
    p = sub.add_parser("demo", help="run the six agents on a copy of the bundled example project")
    p.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    return parser


def _add_pool_parser(sub: Any) -> None:
    p = sub.add_parser("pool", help="start, inspect or serve a pool of model servers")
    actions = p.add_subparsers(dest="pool_command", metavar="ACTION", required=True)
    q = actions.add_parser("up", help="start one member per GPU or MIG slice (llama.cpp without GPUs) until Ctrl-C")
    q.add_argument(
        "-n", "--members", type=_int_in(1), help="how many members (default: every GPU slot; 2 without GPUs)"
    )
    q.add_argument("--server-command", help="GPU server command (default: 'vllm serve')")
    q.add_argument("--model-id", help="model the GPU members serve, e.g. Qwen/Qwen3-8B (required on GPUs)")
    q.add_argument(
        "--base-port", type=_int_in(1, 65535), default=8000, help="member i listens on base port + i (default: 8000)"
    )
    q = actions.add_parser("status", help="health, breaker, load and prefix-cache hit rate of each member; the spill")
    q.add_argument("--front", metavar="URL", help="a running `pool serve` to read spill counts from")
    q = actions.add_parser("serve", help="serve an OpenAI-compatible API over pool_members")
    q.add_argument("--http", metavar="HOST:PORT", default="127.0.0.1:8080", help="where to listen")


def _add_mcp_parser(sub: Any) -> None:
    from mcphive._mcp_cli import add_parser

    add_parser(sub)


def _mcp_command(args: argparse.Namespace) -> int:
    from mcphive._mcp_cli import command

    return command(args)


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from mcphive import _commands as c

    return {
        "run": c.run,
        "route": c.route,
        "agents": c.agents,
        "history": c.history,
        "approve": c.approve,
        "reject": c.reject,
        "ingest": c.ingest,
        "search": c.search,
        "serve": c.serve,
        "install": c.install,
        "doctor": c.doctor,
        "demo": c.demo,
        "worker": c.worker,
        "pool": c.pool,
        "mcp": _mcp_command,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcphive`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _commands()[args.command](args)
    except KeyboardInterrupt:
        print("mcphive: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # the one place every error becomes one line (or a traceback with --debug)
        return _report_error(e, args)


def _report_error(error: Exception, args: Any) -> int:
    from mcphive.errors import MCPHiveError, UsageError

    if args.debug:
        import traceback

        traceback.print_exception(error)
    if isinstance(error, MCPHiveError):
        print(f"mcphive: error: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, UsageError) else EXIT_RUN
    print(
        f"mcphive: internal error: {type(error).__name__}: {error}; rerun with --debug and report it", file=sys.stderr
    )
    return EXIT_RUN


if __name__ == "__main__":
    sys.exit(main())
