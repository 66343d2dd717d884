"""The member client's HTTP layer against real loopback servers that answer as told, byte for byte.

The pool's behaviour over real llama.cpp and vLLM members is tested in test_pool_*.py; here are the
connection rules those tests cannot stage on demand: keep-alive reuse, a connection the server closed
while idle, ``Connection: close``, a reply cut short, a server that never answers, and leaving early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from mcphive.inference.pool._http import HttpClient, HttpError, HttpTimeout

pytestmark = pytest.mark.anyio

Answer = Callable[[int], bytes | None]
"""What the server writes for the n-th request on a connection (0-based); ``None``: write nothing."""


def chunked(*parts: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + body


def fixed(body: bytes, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n%s\r\n%s" % (status.encode(), len(body), extra, body)


class Server:
    """A loopback HTTP/1.1 server: reads each request (headers and content-length body) and writes
    ``answer(n)``; optionally closes after ``close_after`` requests on a connection."""

    def __init__(self, answer: Answer, close_after: int | None = None) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed_by_client = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                reply = self.answer(n)
                n += 1
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
                if self.close_after is not None and n >= self.close_after:
                    break
        except asyncio.IncompleteReadError:
            self.closed_by_client += 1
        except ConnectionError:
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(answer: Answer, close_after: int | None = None) -> AsyncIterator[tuple[Server, str]]:
    server = Server(answer, close_after)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, f"http://127.0.0.1:{port}/v1"
    finally:
        for writer in server.writers:
            writer.close()
        listener.close()


def client(url: str, read_timeout: float = 5.0) -> HttpClient:
    return HttpClient(url, headers={"Authorization": "Bearer k"}, connect_timeout=2.0, read_timeout=read_timeout)


async def test_a_chunked_reply_arrives_decoded_and_the_connection_serves_the_next_request() -> None:
    async with serving(lambda n: chunked(b"data: one\n\n", b"data: two\n\n")) as (server, url):
        http = client(url)
        for _ in range(3):
            async with http.request("POST", "/chat/completions", b'{"a":1}') as response:
                assert response.status == 200
                assert response.headers["content-type"] == "text/event-stream"
                assert await response.read() == b"data: one\n\ndata: two\n\n"
        await http.aclose()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"authorization: Bearer k\r\n" in first and b"content-length: 7\r\n" in first
    assert first.endswith(b'\r\n\r\n{"a":1}')


@pytest.mark.parametrize("pause", [0.0, 0.05], ids=["close-races-the-next-request", "close-seen-while-idle"])
async def test_a_connection_the_server_closed_is_replaced_without_failing_the_request(pause: float) -> None:
    async with serving(lambda n: fixed(b"ok"), close_after=1) as (server, url):
        http = client(url)
        for _ in range(3):
            async with http.request("GET", "/models") as response:
                assert await response.read() == b"ok"
            await asyncio.sleep(pause)
        await http.aclose()
    assert server.connections == 3


async def test_connection_close_is_honoured() -> None:
    async with serving(lambda n: fixed(b"ok", extra=b"connection: close\r\n")) as (server, url):
        http = client(url)
        for _ in range(2):
            async with http.request("GET", "/models") as response:
                assert await response.read() == b"ok"
        await http.aclose()
    assert server.connections == 2


async def test_an_error_status_comes_back_with_its_headers_and_body() -> None:
    answer = fixed(b'{"error":"busy"}', status="429 Too Many Requests", extra=b"Retry-After: 3\r\n")
    async with serving(lambda n: answer) as (_, url):
        http = client(url)
        async with http.request("POST", "/chat/completions", b"{}") as response:
            assert (response.status, response.headers["retry-after"]) == (429, "3")
            assert await response.text() == '{"error":"busy"}'
        await http.aclose()


async def test_a_reply_cut_short_is_an_error_once_what_arrived_is_read() -> None:
    cut = chunked(b"data: one\n\n")[: -len(b"0\r\n\r\n")]  # no terminating chunk
    async with serving(lambda n: cut, close_after=1) as (_, url):
        http = client(url)
        parts: list[bytes] = []
        with pytest.raises(HttpError, match=r"closed|lost"):
            async with http.request("POST", "/chat/completions", b"{}") as response:
                async for part in response.chunks():
                    parts.append(part)
        await http.aclose()
    assert parts == [b"data: one\n\n"]


HUGE_HEADERS = b"HTTP/1.1 200 OK\r\nx-filler: " + b"a" * 70_000 + b"\r\ncontent-length: 0\r\n\r\n"


@pytest.mark.parametrize(
    ("reply", "why"),
    [(b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP reply"), (HUGE_HEADERS, "headers are too large")],
    ids=["garbage", "headers-over-64-kib"],
)
async def test_a_reply_that_is_not_usable_http_is_an_error_saying_why(reply: bytes, why: str) -> None:
    async with serving(lambda n: reply) as (_, url):
        http = client(url)
        with pytest.raises(HttpError, match=why):
            async with http.request("GET", "/models"):
                pass
        await http.aclose()


async def test_a_body_larger_than_the_read_buffer_arrives_whole() -> None:
    body = bytes(range(256)) * 12_288  # 3 MiB: reading pauses above 1 MiB buffered and resumes as it is taken
    async with serving(lambda n: fixed(body)) as (_, url):
        http = client(url)
        async with http.request("GET", "/models") as response:
            await asyncio.sleep(0.2)  # let it pile up unread
            assert await response.read() == body
        await http.aclose()


async def test_a_server_that_never_answers_times_out_and_the_connection_is_dropped() -> None:
    async with serving(lambda n: None) as (server, url):
        http = client(url, read_timeout=0.3)
        with pytest.raises(HttpTimeout) as raised:
            async with http.request("POST", "/chat/completions", b"{}"):
                pass
        assert isinstance(raised.value, TimeoutError)
        for _ in range(50):
            if server.closed_by_client:
                break
            await asyncio.sleep(0.02)
        assert server.closed_by_client == 1
        await http.aclose()


async def test_leaving_a_stream_early_closes_its_connection_so_the_server_stops() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n"  # and then nothing more
    async with serving(lambda n: head) as (server, url):
        http = client(url)
        async with http.request("POST", "/chat/completions", b"{}") as response:
            async for part in response.chunks():
                assert part == b"first"
                break
        for _ in range(50):
            if server.closed_by_client:
                break
            await asyncio.sleep(0.02)
        assert server.closed_by_client == 1
        async with http.request("POST", "/chat/completions", b"{}") as response:  # a new connection
            assert response.status == 200
        assert server.connections == 2
        await http.aclose()


async def test_a_refused_connection_and_a_closed_client_are_clear_errors() -> None:
    async with serving(lambda n: fixed(b"ok")) as (_, url):
        pass  # the port is free again
    http = client(url)
    with pytest.raises(HttpError, match="could not connect"):
        async with http.request("GET", "/models"):
            pass
    await http.aclose()
    with pytest.raises(HttpError, match="closed"):
        async with http.request("GET", "/models"):
            pass


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpClient("ftp://example.org/v1", connect_timeout=1, read_timeout=1)
