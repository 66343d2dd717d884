"""The document store against a real chroma server (`chroma run` from the chromadb package), up and down."""

from __future__ import annotations

import gc
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mcphive.embeddings import Embedder
from mcphive.errors import StoreError
from mcphive.rag import DocumentStore, ingest
from mcphive.settings import Settings

from .corpus import write_corpus

CHROMA = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")

pytestmark = [
    pytest.mark.skipif(CHROMA is None, reason="the `chroma` executable (chromadb package) is not installed"),
    # chroma's HttpClient leaves the sockets of requests that failed when its server died open until collected;
    # the server fixture collects them, so they are reported (and ignored) here rather than in a later test.
    pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChromaServer:
    """One `chroma run` process on loopback, serving the database folder ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        """Start on a fresh port and wait until it answers; returns its URL."""
        assert CHROMA is not None
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [CHROMA, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "chroma run exited at start"
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("chroma run did not answer within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ChromaServer]:
    running = ChromaServer(tmp_path / "chroma-data")
    running.start()
    yield running
    running.stop()
    gc.collect()


def test_ingest_and_search_through_a_chroma_server(tmp_path: Path, server: ChromaServer, embedder: Embedder) -> None:
    store = DocumentStore.from_settings(Settings(data_dir=tmp_path / "data", rag_chroma_url=server.url), embedder)
    report = ingest(store, write_corpus(tmp_path / "ws"))
    assert report.files == 3 and report.added == store.count() > 3
    hit = store.search("zqx_frobnicate_v7", k=1)[0]
    assert (hit.source, hit.start_line, hit.heading, hit.bm25_rank) == ("pkg/widgets.py", 9, "def zqx_frobnicate_v7", 1)
    assert not (tmp_path / "data" / "rag").exists()  # everything went to the server
    again = ingest(store, tmp_path / "ws")
    assert (again.unchanged, again.added) == (3, 0)
    store.close()


def test_a_server_that_is_down_is_a_clear_store_error_and_loses_nothing(
    tmp_path: Path, server: ChromaServer, embedder: Embedder
) -> None:
    store = DocumentStore(url=server.url, embedder=embedder)
    ingest(store, write_corpus(tmp_path / "ws"))
    stored = store.count()
    down = server.url
    server.stop()
    with pytest.raises(StoreError, match=rf"chroma server {down}.*chroma run"):
        store.search("reset password", k=2)
    with pytest.raises(StoreError, match=rf"chroma server {down}"):
        DocumentStore(url=down, embedder=embedder)
    store.close()

    restarted = DocumentStore(url=server.start(), embedder=embedder)
    assert restarted.count() == stored
    assert restarted.search("reset password", k=1)[0].source == "docs/guide.md"
    restarted.close()


def test_an_ingest_cut_off_by_the_server_going_down_resumes_where_it_stopped(
    tmp_path: Path, server: ChromaServer, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "ws")
    store = DocumentStore(url=server.url, embedder=embedder)
    seen: list[str] = []

    def kill_after_first_stored_file(done: int, total: int, path: str) -> None:
        seen.append(path)
        if path == "NOTES.txt":  # the first file that is stored (sorted walk: NOTES.txt, data.txt, docs/...)
            server.stop()

    with pytest.raises(StoreError, match="chroma server"):
        ingest(store, root, progress=kill_after_first_stored_file)
    assert "pkg/widgets.py" not in seen
    store.close()

    resumed_store = DocumentStore(url=server.start(), embedder=embedder)
    assert resumed_store.sources() == ["NOTES.txt"]  # what was finished is there, nothing half-written
    resumed = ingest(resumed_store, root)
    assert (resumed.files, resumed.unchanged) == (3, 1)
    assert resumed_store.sources() == ["NOTES.txt", "docs/guide.md", "pkg/widgets.py"]

    reference = DocumentStore(tmp_path / "reference", embedder)
    assert ingest(reference, root).chunks == resumed_store.count() == reference.count()
    resumed_store.close()
    reference.close()
