"""``mcphive serve`` over stdio as a host meets it: a real subprocess, lines in, lines out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MCPHIVE = str(Path(sys.executable).parent / "mcphive")

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@pytest.mark.timeout(120)  # without the answers the reads below would wait for ever
def test_lines_that_are_not_json_rpc_get_an_error_and_the_server_keeps_serving(tmp_path: Path) -> None:
    lines = [
        "{not json",
        "[1, 2]",
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": 5}),
        json.dumps(INITIALIZE),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    ]
    # A host keeps stdin open until it has its answers (the SDK cancels what is in flight at EOF).
    log = tmp_path / "stderr.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [MCPHIVE, "--data-dir", str(tmp_path), "serve", "--server", "state"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as server,
    ):
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write("\n".join(lines) + "\n")
        server.stdin.flush()
        replies = [json.loads(server.stdout.readline()) for _ in range(5)]
        server.stdin.close()
        assert server.wait(timeout=60) == 0, log.read_text()
    assert [r.get("id") for r in replies] == [None, None, None, 2, 3]
    parse, not_object, bad_method = (r["error"] for r in replies[:3])
    assert parse["code"] == -32700 and "Invalid JSON" in parse["data"]
    assert not_object["code"] == -32600 and bad_method["code"] == -32600
    assert replies[3]["result"]["serverInfo"] and any(t["name"] == "state_get" for t in replies[4]["result"]["tools"])
