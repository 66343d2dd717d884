"""Atomic file replacement: a reader sees the old file or the new one, never half of either.

Every write goes to a temporary file beside its target (same folder, so same file system), then a
rename puts it in place. The temporary file gets the target's mode, or 0644 for a new file (the caller
may ask for another) — not ``mkstemp``'s 0600, which would leave a workspace file unreadable to others.

Standard library only: ``scripts/gpu-check`` loads modules that use it on hosts without mcphive's
dependencies.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "stage_file"]


def stage_file(target: Path, data: bytes, *, new_mode: int = 0o644) -> str:
    """Write ``data`` to a new temporary file beside ``target`` and return its path.

    The file gets ``target``'s mode, or ``new_mode`` when there is no target yet. The caller renames
    it into place (``os.replace``) or removes it; the folder is created if missing.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else new_mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(target: Path, data: bytes, *, exclusive: bool = False, new_mode: int = 0o644) -> None:
    """Replace ``target`` with ``data`` in one step; on any failure ``target`` is as it was.

    Args:
        target: the path to write (its folder is created if missing).
        data: the new content.
        exclusive: refuse to replace an existing file; the check and the write are one atomic step.
        new_mode: the mode of a file that did not exist (an existing file keeps its own).

    Raises:
        FileExistsError: ``exclusive`` and ``target`` already exists.
        OSError: the file could not be written (full disk, permissions); nothing was changed.
    """
    tmp = stage_file(target, data, new_mode=new_mode)
    try:
        if exclusive:
            os.link(tmp, target)  # fails if target exists, unlike a rename
        else:
            os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
