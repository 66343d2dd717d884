"""`mcphive serve --http` as a user runs it: a real process, bearer tokens from MCPHIVE_TOKENS, a real MCP client."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MCPHIVE = str(Path(sys.executable).parent / "mcphive")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "MCPHIVE_TOKENS": "desk:s3cret-token:gateway,state"}
    argv = [MCPHIVE, "--data-dir", str(tmp_path / "data"), "serve", "--http", "127.0.0.1:0"]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.anyio
async def test_the_gateway_and_state_server_answer_over_http_with_a_token(served: subprocess.Popen[str]) -> None:
    assert served.stderr is not None
    with anyio.fail_after(120):
        line = await anyio.to_thread.run_sync(served.stderr.readline)
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    base = f"http://127.0.0.1:{match.group(1)}"
    async with httpx2.AsyncClient(headers={"authorization": "Bearer s3cret-token"}, timeout=30) as http:
        async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            agents = await client.call_tool("list_agents", {})
        async with Client(streamable_http_client(f"{base}/mcp/state", http_client=http)) as client:
            put = await client.call_tool("state_put", {"namespace": "n", "key": "k", "value": 1})
    async with httpx2.AsyncClient(timeout=30) as anonymous:
        refused = await anonymous.post(f"{base}/mcp/state", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert agents.structured_content is not None and len(agents.structured_content["agents"]) == 6
    assert put.structured_content == {"namespace": "n", "key": "k", "version": 1}
    assert refused.status_code == 401, refused.text
