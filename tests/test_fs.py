"""Atomic file replacement (mcphive._fs): all or nothing, modes kept, no temporary files left."""

import os
from pathlib import Path

import pytest

from mcphive._fs import atomic_write


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_writes_new_files_readable_and_keeps_an_existing_files_mode(tmp_path: Path) -> None:
    new = tmp_path / "sub" / "new.json"
    atomic_write(new, b"{}\n")
    assert new.read_bytes() == b"{}\n" and new.stat().st_mode & 0o777 == 0o644
    private = tmp_path / "private.json"
    private.write_bytes(b"old")
    os.chmod(private, 0o600)
    atomic_write(private, b"new")
    assert private.read_bytes() == b"new" and private.stat().st_mode & 0o777 == 0o600
    assert _leftovers(tmp_path) == [] and _leftovers(new.parent) == []
    secret = tmp_path / "secret.json"
    atomic_write(secret, b"{}", new_mode=0o600)
    assert secret.stat().st_mode & 0o777 == 0o600


def test_exclusive_refuses_an_existing_file_and_leaves_it_alone(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write(target, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(target, b"second", exclusive=True)
    assert target.read_bytes() == b"first" and _leftovers(tmp_path) == []


def test_a_failed_rename_leaves_the_old_content_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a folder where the file should go: the rename fails after the data was staged
    (target / "keep").write_text("kept")
    with pytest.raises(OSError):
        atomic_write(target, b"data")
    assert (target / "keep").read_text() == "kept" and _leftovers(tmp_path) == []
