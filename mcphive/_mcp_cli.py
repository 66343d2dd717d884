"""``mcphive mcp list|approve``: the external MCP servers of settings, their tools and pins."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "command"]


def add_parser(sub: Any) -> None:
    """Add the ``mcp`` command group to the CLI's subparsers."""
    p = sub.add_parser("mcp", help="list external MCP servers and approve their tool definitions")
    actions = p.add_subparsers(dest="mcp_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="each [[mcp_servers]] entry, its tools, and whether they match the approved pins")
    q = actions.add_parser("approve", help="pin a server's current tool definitions, showing what changed")
    q.add_argument("server", help="the name of an [[mcp_servers]] entry")
    q.add_argument("--dry-run", action="store_true", help="show what changed without pinning anything")


def command(args: argparse.Namespace) -> int:
    """Run ``mcphive mcp list`` or ``mcphive mcp approve SERVER``."""
    import anyio
    from rich.text import Text

    from mcphive._commands import _print_json, _settings, err, out
    from mcphive.agents.external import approve_server, list_servers, pin_file

    settings = _settings(args)
    if args.mcp_command == "list":
        rows = anyio.run(list_servers, settings)
        if args.json:
            _print_json(rows)
        elif not rows:
            out.print("no external MCP servers; add [[mcp_servers]] entries to mcphive.toml", highlight=False)
        for row in [] if args.json else rows:
            approved = "approved" if row["approved"] else "NOT approved"
            out.print(Text.assemble((str(row["name"]), "bold"), f" ({row['transport']}: {row['target']}) — {approved}"))
            if row["error"]:
                out.print(f"  unreachable: {row['error']}", highlight=False)
            for tool in row["tools"]:
                out.print(f"  {tool['pin']:<9}{tool['name']}  {tool['description'][:90]}", highlight=False)
        return 0
    report = anyio.run(lambda: approve_server(settings, args.server, dry_run=args.dry_run))
    if args.json:
        _print_json(report)
        return 0
    for kind in ("added", "changed", "removed", "unchanged"):
        if report[kind]:
            out.print(f"{kind}: {', '.join(report[kind])}", highlight=False)
    for diff in report["diffs"].values():
        out.print(diff, highlight=False, markup=False)
    if args.dry_run:
        err.print(f"nothing pinned (dry run); run `mcphive mcp approve {args.server}` to approve", highlight=False)
    else:
        err.print(f"approved {args.server}: pinned in {pin_file(settings)}", highlight=False)
    return 0
