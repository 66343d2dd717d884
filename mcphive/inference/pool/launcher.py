"""Start a pool of local ``python -m llama_cpp.server`` members as subprocesses (tests, benchmarks, demos)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx2

from mcphive.errors import ModelUnavailable
from mcphive.inference.local import default_gguf_path

__all__ = ["PoolLauncher"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PoolLauncher:
    """``size`` llama.cpp servers on loopback, each on its own free port.

    Blocking: use it from synchronous code (fixtures, a benchmark's ``main``) or through
    ``anyio.to_thread.run_sync``. Each server runs one request at a time with
    ``--interrupt_requests false`` (so a queued request does not cut a running stream short)
    and keeps its KV cache between requests, reusing the longest common prompt prefix.

    Args:
        size: How many members.
        model_path: The GGUF file; default: the bundled SmolLM2-135M.
        model_alias: The model name the members answer to.
        n_ctx: Context length of each member.
        extra_args: More ``llama_cpp.server`` flags for every member.
        log_dir: Where each member's log goes (``member-<i>.log``); default: a temporary folder.
        start_timeout: Seconds each member may take to answer ``/v1/models``.
    """

    def __init__(
        self,
        size: int = 2,
        *,
        model_path: Path | None = None,
        model_alias: str = "smollm2",
        n_ctx: int = 2048,
        extra_args: tuple[str, ...] = (),
        log_dir: Path | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.model_alias = model_alias
        self._model_path = model_path or default_gguf_path()
        self._n_ctx = n_ctx
        self._extra_args = extra_args
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
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self._model_path)]
        command += ["--model_alias", self.model_alias, "--host", "127.0.0.1", "--port", str(self.ports[index])]
        command += ["--n_ctx", str(self._n_ctx), "--n_threads", "1", "--n_threads_batch", "1"]
        command += ["--interrupt_requests", "false", *self._extra_args]
        with self.log_path(index).open("ab") as log:
            self.processes[index] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

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
        raise ModelUnavailable(f"llama_cpp.server member {index} did not start; its log ends:\n{tail}")

    def kill(self, index: int) -> None:
        """Kill member ``index`` at once (SIGKILL), as a crash would."""
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, index: int) -> None:
        """Start member ``index`` again on its old port and wait until it answers."""
        self.kill(index)
        self._spawn(index)
        self.wait_ready(index)

    def stop(self) -> None:
        """Stop every member: SIGTERM, then SIGKILL after 10 s."""
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self.processes:
            if process is None:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
