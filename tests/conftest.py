"""Shared fixtures. Only the LLM is ever scripted; everything else here is real."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports torch: 2 shared cores collapse under multi-threaded torch, and no test may download.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
# Real remote model calls are blocked: a developer's key must never make "auto" pick Anthropic.
os.environ.pop("ANTHROPIC_API_KEY", None)
for _name in [n for n in os.environ if n.startswith("MCPHIVE_") and n != "MCPHIVE_VLLM_VENV"]:
    del os.environ[_name]

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from mcphive.settings import Settings  # noqa: E402
from mcphive.tracing import use_provider  # noqa: E402


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose state lives in this test's temporary folder."""
    return Settings(data_dir=tmp_path / "data", workers=2)


@pytest.fixture
def sample_workspace(tmp_path: Path) -> Path:
    """A fresh copy of the bundled example project."""
    from mcphive.sample import copy_sample_project

    return copy_sample_project(tmp_path / "sample_project")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span the hive ends during the test, exported in memory; tracing is off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_provider(provider)
    yield exporter
    use_provider(None)
