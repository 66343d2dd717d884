"""The example workspace shipped with mcphive, and the answer key of the problems planted in it.

``sample_project`` is a small Python project ("pricefeed": fetches, caches and prices quotes)
with real problems for each of the six specialists to find: lint errors, missing docstrings
and a broken README link, one failing test caused by a real bug, Dockerfile smells, an error
burst in its log, and fake hard-coded credentials. The manifest lies *beside* the project, not
inside it, so an agent working in the project cannot read the answers.

Use it for demos, the quick start and benchmarks of agent recall::

    from mcphive.sample import copy_sample_project, load_manifest

    workspace = copy_sample_project("pricefeed")  # work on a copy: agents may edit files
"""

from __future__ import annotations

import json
import shutil
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

__all__ = ["copy_sample_project", "load_manifest", "sample_project_path"]

_EXAMPLES = files("mcphive") / "examples"


def sample_project_path() -> Path:
    """The folder of the example workspace inside the installed package.

    Treat it as read-only (it may be inside a site-packages folder): copy it before letting
    agents write to it.
    """
    # mcphive is installed as files (never zipped), so the resource is already a real path.
    with as_file(_EXAMPLES / "sample_project") as path:
        return Path(path)


def copy_sample_project(destination: str | Path) -> Path:
    """Copy the example workspace to ``destination`` (which must not exist yet) and return its path.

    Caches a previous run may have left in the package folder are not copied.
    """
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache")
    return Path(shutil.copytree(sample_project_path(), destination, ignore=ignore))


def load_manifest() -> list[dict[str, Any]]:
    """Every planted problem: ``id``, ``agent``, ``file``, ``line``, ``kind``, ``tool``, ``rule``, ``description``.

    ``tool`` is the workspace tool that reports it and ``rule`` the exact rule id that tool gives
    (a ruff or bandit code, a hadolint DL code, a detect-secrets type, a pytest node id...).
    """
    manifest: list[dict[str, Any]] = json.loads((_EXAMPLES / "sample_project.manifest.json").read_text("utf-8"))
    return manifest
