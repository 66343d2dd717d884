"""The workspace path jail: every workspace tool resolves paths through it.

A path is accepted only when its fully resolved form (symlinks followed) stays inside the
workspace root; anything else raises :class:`~mcphive.errors.ToolError`, which reaches the
model as an MCP error result it can correct.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mcphive.errors import ToolError, WorkspaceError

__all__ = ["SKIP_DIRS", "Jail"]

SKIP_DIRS = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "node_modules"}
)
"""Folders no workspace tool lists or scans."""


class Jail:
    """Resolves user- or model-supplied paths inside one workspace root."""

    def __init__(self, root: str | Path) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WorkspaceError(f"workspace {str(path)!r} is not an existing folder; pass a folder with --workspace")
        self.root = path.resolve()

    def resolve(self, relative: str) -> Path:
        """Return the absolute path of ``relative``, refusing anything outside the root."""
        candidate = (self.root / relative).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            raise ToolError(f"path {relative!r} is outside the workspace; use a path relative to the workspace root")
        return candidate

    def relative(self, path: Path) -> str:
        """The workspace-relative POSIX form of an absolute path inside the root."""
        return path.resolve().relative_to(self.root).as_posix()

    def files(self, suffixes: tuple[str, ...] = (), limit: int = 5000) -> Iterator[str]:
        """Workspace-relative paths of regular files, sorted, skipping tool and VCS folders."""
        count = 0
        for path in sorted(self.root.rglob("*")):
            if count >= limit:
                return
            parts = path.relative_to(self.root).parts
            if any(part in SKIP_DIRS for part in parts) or not path.is_file():
                continue
            if path.is_symlink() and self.root not in path.resolve().parents:
                continue
            if suffixes and not path.name.endswith(suffixes):
                continue
            count += 1
            yield path.relative_to(self.root).as_posix()
