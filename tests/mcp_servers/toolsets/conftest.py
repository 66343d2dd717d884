"""Fixtures for the toolset tests: a fresh copy of the shipped example workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcphive.mcp_servers.jail import Jail
from mcphive.sample import copy_sample_project


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A writable copy of the example workspace."""
    return copy_sample_project(tmp_path / "sample_project")


@pytest.fixture
def jail(workspace: Path) -> Jail:
    """A jail rooted at the copied example workspace."""
    return Jail(workspace)
