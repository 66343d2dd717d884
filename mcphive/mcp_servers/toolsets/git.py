"""The code agent's git tools: see what changed, work on a ``mcphive/*`` branch, commit there.

The rules keep an agent's work reviewable and reversible:

- the workspace must be the top of its own repository, so an agent can never commit to a parent
  repository that merely contains the workspace;
- commits happen only on a branch named ``mcphive/<name>``, never on ``main`` or any branch a
  person works on; nothing is ever pushed, amended, rebased or reset;
- git runs with repository hooks, ``core.fsmonitor``, the editor and external diff drivers
  switched off (a commit should not run the workspace's scripts), and with a fixed identity when
  the repository has none. Filter drivers a repository configures (``.gitattributes``) still run,
  as they do for any git command in that repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import existing_path, run_tool

__all__ = ["BRANCH_PREFIX", "MAX_DIFF_CHARS", "TOOLS", "git_branch", "git_commit", "git_diff", "git_status"]

BRANCH_PREFIX = "mcphive/"
"""Agents commit only on branches whose name starts with this."""

MAX_DIFF_CHARS = 100_000
"""A longer diff is cut here (and marked truncated): a model cannot read more anyway."""

_GIT_TIMEOUT = 60.0
_SAFE_CONFIG = (
    "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.editor=true",
    "-c", "commit.gpgsign=false", "-c", "color.ui=false", "-c", "core.quotepath=false",
)  # fmt: skip
_IDENTITY = ("-c", "user.name=mcphive agent", "-c", "user.email=mcphive@localhost")
_BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _git(jail: Jail, *args: str, check: bool = True, config: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    argv = ["git", "-C", str(jail.root), *_SAFE_CONFIG, *config, *args]
    completed = run_tool(argv, cwd=jail.root, timeout=_GIT_TIMEOUT)
    if check and completed.returncode != 0:
        raise ToolError(f"git {args[0]} failed (exit {completed.returncode}): {completed.stderr.strip()[:500]}")
    return completed


def _repository(jail: Jail) -> None:
    """Refuse unless the workspace root is the top folder of a git repository."""
    completed = _git(jail, "rev-parse", "--show-toplevel", check=False)
    if completed.returncode != 0:
        raise ToolError("the workspace is not a git repository; run `git init` in it first")
    if Path(completed.stdout.strip()).resolve() != jail.root:
        raise ToolError("the workspace is inside a larger git repository; git tools only work at a repository's top")


def _current_branch(jail: Jail) -> str | None:
    completed = _git(jail, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return completed.stdout.strip() if completed.returncode == 0 else None  # None: a detached HEAD


def _has_commits(jail: Jail) -> bool:
    return _git(jail, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode == 0


def _count(field: str) -> int | None:
    return int(field) if field.isdigit() else None


def git_status(jail: Jail) -> dict[str, Any]:
    """The current branch and every changed, staged or untracked file (``git status --porcelain``)."""
    _repository(jail)
    completed = _git(jail, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries = completed.stdout.split("\0")
    changes: list[dict[str, str]] = []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":
            i += 1  # a rename's second field is the old name
        changes.append({"path": path, "status": code})
    branch = _current_branch(jail)
    return {
        "findings": [],
        "branch": branch,
        "changes": changes,
        "summary": f"on {branch or 'a detached HEAD'}: {len(changes)} changed or untracked files",
    }


def git_diff(jail: Jail, path: str = ".") -> dict[str, Any]:
    """The diff of tracked files under ``path`` against the last commit (staged and unstaged changes)."""
    spec = ":(literal)" + jail.relative(existing_path(jail, path))  # ":(literal)": no glob magic in names
    _repository(jail)
    base = "HEAD" if _has_commits(jail) else _EMPTY_TREE
    flags = ("--no-ext-diff", "--no-textconv", "--no-color", "--no-renames")
    text = _git(jail, "diff", *flags, base, "--", spec).stdout
    numstat = _git(jail, "diff", "--numstat", "-z", *flags, base, "--", spec).stdout
    files: list[dict[str, Any]] = []
    for record in filter(None, numstat.split("\0")):
        added, removed, name = record.split("\t", 2)
        # Binary files count "-" lines: None says "not countable".
        files.append({"path": name, "added": _count(added), "removed": _count(removed)})
    truncated = len(text) > MAX_DIFF_CHARS
    return {
        "findings": [],
        "diff": text[:MAX_DIFF_CHARS],
        "truncated": truncated,
        "files": files,
        "summary": f"{len(files)} files differ from {base if base == 'HEAD' else 'an empty repository'} under {path!r}",
    }


def git_branch(jail: Jail, name: str) -> dict[str, Any]:
    """Create (or switch to) the work branch ``mcphive/<name>``; uncommitted changes come along.

    Raises:
        ToolError: the name is not a valid branch name, or git cannot switch (a conflicting change).
    """
    _repository(jail)
    name = name.removeprefix(BRANCH_PREFIX)
    branch = BRANCH_PREFIX + name
    if not _BRANCH_NAME.match(name) or ".." in name or name.endswith((".lock", ".")):
        raise ToolError(f"{name!r} is not a usable branch name; use letters, digits, '-', '_' and '/'")
    exists = _git(jail, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
    if exists:
        _git(jail, "switch", "--no-guess", branch)
    else:
        _git(jail, "switch", "--no-guess", "-c", branch)
    return {
        "findings": [],
        "branch": branch,
        "created": not exists,
        "summary": f"{'switched to' if exists else 'created and switched to'} branch {branch}",
    }


def git_commit(jail: Jail, message: str) -> dict[str, Any]:
    """Stage every change in the workspace and commit it on the current ``mcphive/*`` branch.

    Raises:
        ToolError: the current branch is not a ``mcphive/*`` branch, the message is empty, or nothing changed.
    """
    _repository(jail)
    branch = _current_branch(jail)
    if branch is None or not branch.startswith(BRANCH_PREFIX):
        raise ToolError(
            f"commits are only made on a {BRANCH_PREFIX}* branch, and this is {branch or 'a detached HEAD'!r}; "
            "call git_branch first"
        )
    if not message.strip():
        raise ToolError("the commit message is empty; say what the change does and why")
    _git(jail, "add", "--all", "--", ".")
    staged = [f for f in _git(jail, "diff", "--cached", "--name-only", "-z").stdout.split("\0") if f]
    if not staged:
        raise ToolError("there is nothing to commit; make a change first")
    has_identity = _git(jail, "config", "user.email", check=False).returncode == 0
    identity = () if has_identity else _IDENTITY
    _git(jail, "commit", "--no-verify", "--quiet", "-m", message, config=identity)
    sha = _git(jail, "rev-parse", "HEAD").stdout.strip()
    return {
        "findings": [],
        "branch": branch,
        "commit": sha,
        "files": staged,
        "summary": f"committed {len(staged)} files on {branch} as {sha[:12]}",
    }


TOOLS = [
    ToolDef("git_status", git_status, "Show the git branch and the changed, staged and untracked files."),
    ToolDef(
        "git_diff",
        git_diff,
        "Show the diff of tracked files against the last commit, for the whole workspace or one path.",
        file_args={"path": ("/",)},
    ),
    ToolDef(
        "git_branch",
        git_branch,
        f"Create or switch to the work branch {BRANCH_PREFIX}<name>; uncommitted changes come along.",
        writes=True,
    ),
    ToolDef(
        "git_commit",
        git_commit,
        f"Commit every change on the current {BRANCH_PREFIX}* branch (never on main; nothing is pushed).",
        writes=True,
    ),
]
