"""`mcphive install claude-desktop --dry-run`: shows the whole merged file, writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcphive.cli import main


def test_dry_run_prints_the_merged_config_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "Claude" / "claude_desktop_config.json"
    config.parent.mkdir()
    original = json.dumps({"mcpServers": {"other": {"command": "x"}}, "theme": "dark"})
    config.write_text(original)
    argv = ["--data-dir", str(tmp_path / "data"), "install", "claude-desktop", "--config-file", str(config)]

    assert main([*argv, "--write", "--dry-run"]) == 0  # --dry-run wins over --write
    printed = json.loads(capsys.readouterr().out)
    assert printed["theme"] == "dark" and set(printed["mcpServers"]) == {"other", "mcphive"}
    assert printed["mcpServers"]["mcphive"]["env"] == {"MCPHIVE_DATA_DIR": str(tmp_path / "data")}
    assert config.read_text() == original

    missing = tmp_path / "nowhere" / "claude_desktop_config.json"
    assert main([*argv[:-1], str(missing), "--dry-run"]) == 0
    assert set(json.loads(capsys.readouterr().out)["mcpServers"]) == {"mcphive"}
    assert not missing.parent.exists()

    config.write_text("{not json")
    assert main([*argv, "--dry-run"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err and config.read_text() == "{not json"
