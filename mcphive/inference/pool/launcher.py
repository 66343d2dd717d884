"""Start a pool of local model servers as subprocesses (tests, benchmarks, demos).

By default each member is ``python -m llama_cpp.server`` with the bundled SmolLM2 GGUF. Any other
OpenAI-compatible server runs the same way from a :class:`ServerCommand`: an argv and environment
with ``{port}``, ``{index}`` and ``{core}`` placeholders, e.g. ``python -m vllm.entrypoints.openai.api_server``
in another virtual environment (:meth:`ServerCommand.from_manifest` reads what ``scripts/vllm-cpu`` wrote).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx2

from mcphive.errors import ConfigError, ModelUnavailable
from mcphive.inference.local import default_gguf_path

__all__ = ["PoolLauncher", "ServerCommand"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerCommand:
    """How to start one member: an argv and extra environment, with placeholders.

    ``{port}`` is the member's port, ``{index}`` its position in the pool and ``{core}`` the CPU core
    it may pin itself to (``index`` modulo the machine's cores).

    Attributes:
        argv: The command line.
        env: Variables added to the launcher's own environment.
        name: What the server is, for error messages.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = "model server"

    @classmethod
    def from_manifest(cls, path: Path) -> ServerCommand:
        """The vLLM CPU server that ``scripts/vllm-cpu`` installed, from its manifest (``mcphive-vllm.json``).

        Raises:
            ConfigError: the manifest is missing or does not say how to serve.
        """
        try:
            serve = json.loads(path.read_text())["serve"]
            return cls(tuple(serve["argv"]), dict(serve["env"]), name="vLLM")
        except FileNotFoundError as e:
            raise ConfigError(f"no vLLM CPU environment at {path.parent}; run scripts/vllm-cpu to install it") from e
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path} does not say how to start vLLM ({e!r}); run scripts/vllm-cpu again") from e

    def render(self, index: int, port: int) -> tuple[list[str], dict[str, str]]:
        """The argv and the extra environment of member ``index`` listening on ``port``."""
        values = {"port": port, "index": index, "core": index % (os.cpu_count() or 1)}
        argv = [part.format(**values) for part in self.argv]
        env = {key: value.format(**values) for key, value in self.env.items()}
        return argv, env


class PoolLauncher:
    """``size`` model servers on loopback, each on its own free port.

    Blocking: use it from synchronous code (fixtures, a benchmark's ``main``) or through
    ``anyio.to_thread.run_sync``. Each member runs in its own process group, so stopping it also
    ends the worker processes it started (vLLM's engine core).

    The default members are llama.cpp servers that run one request at a time with
    ``--interrupt_requests false`` (so a queued request does not cut a running stream short) and
    keep their KV cache between requests, reusing the longest common prompt prefix.

    Args:
        size: How many members.
        server: How to start a member; default: ``llama_cpp.server`` with ``model_path``.
        model_path: The GGUF file of the default server; default: the bundled SmolLM2-135M.
        model_alias: The model name the members answer to.
        n_ctx: Context length of each default member.
        extra_args: More ``llama_cpp.server`` flags for every default member.
        log_dir: Where each member's log goes (``member-<i>.log``); default: a temporary folder.
        start_timeout: Seconds each member may take to answer ``/v1/models``.
    """

    def __init__(
        self,
        size: int = 2,
        *,
        server: ServerCommand | None = None,
        model_path: Path | None = None,
        model_alias: str = "smollm2",
        n_ctx: int = 2048,
        extra_args: tuple[str, ...] = (),
        log_dir: Path | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.model_alias = model_alias
        if server is None:
            argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path or default_gguf_path())]
            argv += ["--model_alias", model_alias, "--host", "127.0.0.1", "--port", "{port}"]
            argv += ["--n_ctx", str(n_ctx), "--n_threads", "1", "--n_threads_batch", "1"]
            argv += ["--interrupt_requests", "false", *extra_args]
            server = ServerCommand(tuple(argv), name="llama_cpp.server")
        self.server = server
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mcphive-pool-")
            log_dir = Path(self._tmp.name)
        self.log_dir = log_dir
        self._start_timeout = start_timeout
        self.ports = [_free_port() for _ in range(size)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> list[str]:
        """Each member's ``/v1`` root."""
        return [f"http://127.0.0.1:{port}/v1" for port in self.ports]

    def log_path(self, index: int) -> Path:
        """Member ``index``'s log file."""
        return self.log_dir / f"member-{index}.log"

    def __enter__(self) -> PoolLauncher:
        try:
            for index in range(len(self.ports)):
                self._spawn(index)
            for index in range(len(self.ports)):
                self.wait_ready(index)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _spawn(self, index: int) -> None:
        argv, env = self.server.render(index, self.ports[index])
        with self.log_path(index).open("ab") as log:
            self.processes[index] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=os.environ | env, start_new_session=True
            )

    def wait_ready(self, index: int) -> None:
        """Block until member ``index`` answers ``/v1/models``.

        Raises:
            ModelUnavailable: it exited or did not answer within ``start_timeout``.
        """
        process = self.processes[index]
        deadline = time.monotonic() + self._start_timeout
        with httpx2.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if process is None or process.poll() is not None:
                    break
                try:
                    if client.get(f"{self.urls[index]}/models").status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                time.sleep(0.1)  # polling a child process from synchronous code; nothing to wait on instead
        tail = self.log_path(index).read_text(errors="replace")[-2000:]
        raise ModelUnavailable(f"{self.server.name} member {index} did not start; its log ends:\n{tail}")

    def kill(self, index: int) -> None:
        """Kill member ``index`` and its workers at once (SIGKILL), as a crash would."""
        process = self.processes[index]
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGKILL)
            process.wait()

    def restart(self, index: int) -> None:
        """Start member ``index`` again on its old port and wait until it answers."""
        self.kill(index)
        self._spawn(index)
        self.wait_ready(index)

    def stop(self) -> None:
        """Stop every member: SIGTERM to its process group, then SIGKILL after 10 s."""
        for process in self.processes:
            if process is not None and process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        for process in self.processes:
            if process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            # Workers the member started may outlive it; its process group ends with it.
            _signal_group(process, signal.SIGKILL)
            process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
