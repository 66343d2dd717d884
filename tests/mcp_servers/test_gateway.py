"""``mcphive serve`` over real stdio, launched exactly as Claude Desktop would from the generated config."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio

MCPHIVE = str(Path(sys.executable).parent / "mcphive")


def claude_desktop_entry(data_dir: Path) -> dict[str, object]:
    done = subprocess.run(
        [MCPHIVE, "--data-dir", str(data_dir), "install", "claude-desktop"], capture_output=True, text=True, check=True
    )
    entry: dict[str, object] = json.loads(done.stdout)["mcpServers"]["mcphive"]
    return entry


async def test_claude_desktop_can_list_agents_and_run_a_task_over_stdio(tmp_path: Path, sample_workspace: Path) -> None:
    entry = claude_desktop_entry(tmp_path / "data")
    env = {**entry["env"], "MCPHIVE_MAX_MODEL_STEPS": "0"}  # type: ignore[dict-item]
    params = StdioServerParameters(command=str(entry["command"]), args=list(entry["args"]), env=env, cwd="/")  # type: ignore[call-overload]
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools == {"run_task", "submit_task", "task_status", "task_result", "cancel_task", "list_agents",
                         "approve_task", "reject_task"}  # fmt: skip
        agents = await client.call_tool("list_agents", {})
        assert agents.structured_content is not None
        assert [a["name"] for a in agents.structured_content["agents"]] == [
            "code",
            "docs",
            "test",
            "infra",
            "ops",
            "security",
        ]

        ran = await client.call_tool(
            "run_task", {"text": "find hard-coded secrets", "workspace": str(sample_workspace), "agent": "security"}
        )
        assert not ran.is_error, ran.content
        result = ran.structured_content
        assert result is not None and result["status"] == "succeeded"
        assert [c["tool"] for c in result["tool_calls"]] == ["secret_scan", "bandit_scan", "mcp_tool_audit"]

        status = await client.call_tool("task_status", {"task_id": result["task_id"]})
        assert status.structured_content is not None and status.structured_content["status"] == "succeeded"

        bad = await client.call_tool("run_task", {"text": " ", "workspace": str(sample_workspace)})
        assert bad.is_error and "task text is empty" in bad.content[0].text  # type: ignore[union-attr]
        outside = await client.call_tool("run_task", {"text": "lint", "workspace": "/no/such/dir"})
        assert outside.is_error and "not an existing folder" in outside.content[0].text  # type: ignore[union-attr]
    assert (tmp_path / "data" / "mcphive.db").exists()  # state went to the configured data dir, not to cwd "/"
