"""The Claude Desktop config entry for ``mcphive serve``: absolute paths, only the env it needs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from mcphive._fs import atomic_write
from mcphive.errors import ConfigError
from mcphive.settings import Settings

__all__ = ["claude_desktop_entry", "default_config_path", "merge_config", "merged_config"]


def _executable() -> str:
    beside = Path(sys.executable).parent / "mcphive"
    if beside.exists():
        return str(beside)
    found = shutil.which("mcphive")
    return str(Path(found).resolve()) if found else str(beside)


def claude_desktop_entry(settings: Settings, *, config: str | None = None) -> dict[str, Any]:
    """The ``mcpServers.mcphive`` entry. Claude Desktop starts servers from ``/``, so every path is absolute."""
    args = ["serve"]
    if config:
        args = ["--config", str(Path(config).resolve()), *args]
    env = {"MCPHIVE_DATA_DIR": str(settings.data_dir)}
    return {"command": _executable(), "args": args, "env": env}


def default_config_path() -> Path:
    """Where Claude Desktop reads its config on this platform."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "Claude" / "claude_desktop_config.json"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "Claude" / "claude_desktop_config.json"


def merged_config(path: Path, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The config ``path`` holds with ``mcpServers[name]`` set to ``entry``, every other server kept; writes nothing.

    Raises:
        ConfigError: the file exists but is not a Claude Desktop config (not JSON, or ``mcpServers`` not an object).
    """
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON ({e}); fix or move it, then run the command again") from e
        if not isinstance(data, dict) or not isinstance(data.get("mcpServers", {}), dict):
            raise ConfigError(f"{path} does not look like a Claude Desktop config; fix or move it")
    data.setdefault("mcpServers", {})[name] = entry
    return data


def merge_config(path: Path, name: str, entry: dict[str, Any]) -> None:
    """Set ``mcpServers[name]`` in ``path``, keeping every other server; the file is replaced atomically."""
    data = merged_config(path, name, entry)
    # Other servers' entries often carry API keys in their env: a new file is private; an existing one keeps its mode.
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), new_mode=0o600)
