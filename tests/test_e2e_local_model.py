"""End to end with the real embedded model (llama.cpp + SmolLM2-135M): nothing is scripted here."""

import json
import os
import subprocess
import sys
from pathlib import Path

from mcphive.sample import load_manifest

MCPHIVE = str(Path(sys.executable).parent / "mcphive")


def cli(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MCPHIVE, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **env},
    )


def test_a_full_task_routes_runs_a_constrained_tool_call_through_mcp_and_is_recorded(
    tmp_path: Path, sample_workspace: Path
) -> None:
    done = cli(
        "--json", "run", "scan the project for hard-coded secrets", "--workspace", str(sample_workspace),
        data_dir=tmp_path / "data", MCPHIVE_MAX_MODEL_STEPS="1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded" and result["agent"] == "security"
    assert result["route"]["stage"] in ("rule", "semantic")
    assert result["model"].startswith("local:")
    calls = [c for step in result["steps"] for c in step["tool_calls"]]
    chosen = [c for c in calls if c["chosen_by"] == "model"]
    assert len(chosen) == 1, calls  # the model made its one bounded choice
    path = chosen[0]["arguments"].get("path")
    assert path is not None and (sample_workspace / path).exists()  # a real file, as the enum allowed
    assert not chosen[0]["is_error"]
    assert result["answer"] and result["usage"]["model_calls"] == 2

    listed = json.loads(cli("--json", "history", data_dir=tmp_path / "data").stdout)
    assert listed[0]["id"] == result["task_id"]
    shown = json.loads(cli("--json", "history", result["task_id"][:10], data_dir=tmp_path / "data").stdout)
    recorded = [c for step in shown["steps"] for c in step["tool_calls"]]
    assert [(c["tool"], c["chosen_by"], c["arguments"]) for c in recorded] == [
        (c["tool"], c["chosen_by"], c["arguments"]) for c in calls
    ]


def test_the_demo_report_shows_every_planted_problem_of_the_manifest(tmp_path: Path) -> None:
    done = cli("demo", data_dir=tmp_path / "data", COLUMNS="260")
    assert done.returncode == 0, done.stderr
    report = done.stdout
    missing = [
        p for p in load_manifest()
        if f"{p['file']}:{p['line']}" not in report or str(p["rule"]) not in report
    ]  # fmt: skip
    assert missing == []
    manifest_size = len(load_manifest())
    assert f"planted problems found: {manifest_size} of {manifest_size}" in report
    assert report.count("status succeeded") == 6
