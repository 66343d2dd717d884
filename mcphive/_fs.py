"""Atomic file replacement: a reader sees the old file or the new one, never half of either.

Every write goes to a temporary file beside its target (same folder, so same file system), then a
rename puts it in place. The temporary file gets the target's mode, or 0644 for a new file — not
``mkstemp``'s 0600, which would leave a workspace file or a user's config unreadable to others.

Standard library only: ``scripts/gpu-check`` loads modules that use it on hosts without mcphive's
dependencies.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "stage_file"]


def stage_file(target: Path, data: bytes) -> str:
    """Write ``data`` to a new temporary file beside ``target`` (with ``target``'s mode) and return its path.

    The caller renames it into place (``os.replace``) or removes it; the folder is created if missing.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o644)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(target: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Replace ``target`` with ``data`` in one step; on any failure ``target`` is as it was.

    Args:
        target: the path to write (its folder is created if missing).
        data: the new content.
        exclusive: refuse to replace an existing file; the check and the write are one atomic step.

    Raises:
        FileExistsError: ``exclusive`` and ``target`` already exists.
        OSError: the file could not be written (full disk, permissions); nothing was changed.
    """
    tmp = stage_file(target, data)
    try:
        if exclusive:
            os.link(tmp, target)  # fails if target exists, unlike a rename
        else:
            os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
