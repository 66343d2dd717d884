"""Fixtures for the pool: real llama.cpp members (started once per module) and a fault-injecting proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mcphive.inference.pool import PoolLauncher

from .fault_proxy import FaultProxy


@pytest.fixture(scope="module")
def launcher() -> Iterator[PoolLauncher]:
    """Two real ``llama_cpp.server`` members on loopback."""
    with PoolLauncher(2) as pool_launcher:
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
