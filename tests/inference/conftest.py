"""Fixtures for the inference backends: the real SmolLM2 GGUF and a real llama.cpp OpenAI-compatible server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from mcphive.inference.local import default_gguf_path

_SERVER_START_DEADLINE_S = 120.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dead_url() -> str:
    """An OpenAI-style base URL on a loopback port nobody listens on."""
    return f"http://127.0.0.1:{_free_port()}/v1"


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return default_gguf_path()


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    # Poll the model list until the server answers; a deadline instead of a fixed sleep.
    deadline = time.monotonic() + _SERVER_START_DEADLINE_S
    with httpx2.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.get(f"{url}/models").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within {_SERVER_START_DEADLINE_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``python -m llama_cpp.server`` on a free loopback port; yields its ``/v1`` base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_ready(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
