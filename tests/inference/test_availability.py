"""``check_backends``: which model backends could answer, checked cheaply for ``mcphive doctor``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcphive.inference.availability import BackendStatus, acheck_backends, check_backends
from mcphive.settings import Settings


def by_name(statuses: list[BackendStatus]) -> dict[str, BackendStatus]:
    assert [s.name for s in statuses] == ["local", "openai", "anthropic"]
    return {s.name: s for s in statuses}


def test_with_nothing_configured_only_the_embedded_model_is_available(tmp_path: Path) -> None:
    statuses = by_name(check_backends(Settings(data_dir=tmp_path, anthropic_api_key=None)))
    assert statuses["local"].available
    assert "SmolLM2" in statuses["local"].detail
    assert not statuses["openai"].available
    assert "set openai_base_url" in statuses["openai"].detail
    assert not statuses["anthropic"].available
    assert "anthropic_api_key" in statuses["anthropic"].detail


def test_a_configured_dead_openai_url_is_reported_unavailable_and_a_key_counts_as_configured(
    tmp_path: Path, dead_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, openai_base_url=dead_url, anthropic_api_key="sk-test")
    statuses = by_name(check_backends(settings))
    assert not statuses["openai"].available
    assert dead_url in statuses["openai"].detail
    assert "not answering" in statuses["openai"].detail
    assert statuses["anthropic"].available


def test_a_missing_local_model_path_makes_the_local_backend_unavailable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, local_model_path=tmp_path / "absent.gguf", anthropic_api_key=None)
    local = by_name(check_backends(settings))["local"]
    assert not local.available
    assert "local_model_path" in local.detail


def test_an_unparsable_openai_url_is_reported_not_raised(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, openai_base_url="localhost-without-scheme", anthropic_api_key=None)
    assert not by_name(check_backends(settings))["openai"].available


@pytest.mark.anyio
async def test_a_running_openai_compatible_server_is_reported_available(tmp_path: Path, llama_server: str) -> None:
    settings = Settings(data_dir=tmp_path, openai_base_url=llama_server, anthropic_api_key=None)
    statuses = by_name(await acheck_backends(settings))
    assert statuses["openai"].available
    assert llama_server in statuses["openai"].detail
