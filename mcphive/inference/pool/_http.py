"""A lean HTTP/1.1 client for pool members: keep-alive connections on asyncio, parsed by ``httptools``.

The pool front relays every request through a member client, so that client's CPU per request is
the front's added latency. ``aiohttp`` spent ~200 µs of CPU on a streamed one-token completion here,
most of it in its general machinery (URL and request objects, a writer task per request); this client
does what a member needs — one server, a few paths, a JSON body, a streamed or whole reply — in ~90 µs
(``benchmarks/README.md``, pool_overhead). Parsing, chunked decoding and keep-alive rules are
``httptools`` (llhttp, the parser under uvicorn); this module only manages connections and waits.

Errors: :class:`HttpError` for anything the transport did wrong (refused, reset, cut short, not HTTP),
:class:`HttpTimeout` (also a :class:`TimeoutError`) when connecting or a read takes too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["HttpClient", "HttpError", "HttpResponse", "HttpTimeout"]

_MAX_HEADER_BYTES = 64 * 1024
_PAUSE_ABOVE = 1 << 20  # bytes buffered before reading from the socket stops until the reader catches up
_MAX_IDLE = 32  # idle keep-alive connections kept per client
_IDLE_FOR = 4.0
"""Seconds an idle connection is reused for. uvicorn (vLLM's and llama.cpp's server) closes a
keep-alive connection after 5 s idle; reusing one just as it closes would fail the request."""


class HttpError(Exception):
    """The member's connection failed: refused, reset, closed early, or what came back was not HTTP."""


class HttpTimeout(HttpError, TimeoutError):
    """Connecting, or waiting for the next bytes of a reply, took longer than the client's timeout."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: feeds what arrives to ``httptools`` and wakes the reader."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received = False
        self.body: deque[bytes] = deque()
        self._buffered = 0
        self._header_bytes = 0
        self.refused: HttpError | None = None
        self._paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HttpError("the member switched protocols"))
        except httptools.HttpParserError as e:
            self._fail(self.refused or HttpError(f"not an HTTP reply: {e}"))
        if self._buffered > _PAUSE_ABOVE and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = HttpError(f"connection lost: {exc}" if exc else "the member closed the connection")
        self.transport = None
        self._wake()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEADER_BYTES:
            self.refused = HttpError(f"the reply's headers are too large (over {_MAX_HEADER_BYTES // 1024} KiB)")
            raise self.refused  # httptools wraps what a callback raises; data_received reports this one
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once this callback returns

    # the reader's side

    def _fail(self, error: Exception) -> None:
        self.lost = error
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, limit: float) -> None:
        """Until more has arrived (or the connection ended); :class:`HttpTimeout` after ``limit`` seconds."""
        if self.lost is not None:
            raise self.lost
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(limit, _expire, waiter, limit)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self) -> bytes:
        """What has arrived of the body since the last call (resuming the socket if it was paused)."""
        data = self.body.popleft() if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and self.lost is None and self.transport is not None


def _expire(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(HttpTimeout(f"nothing arrived within {timeout:g} s"))


class HttpResponse:
    """A reply whose status and headers have arrived; its body is read with :meth:`read` or :meth:`chunks`."""

    def __init__(self, connection: _Connection, read_timeout: float) -> None:
        self._conn = connection
        self._timeout = read_timeout
        self.status = connection.status
        self.headers = connection.headers
        """Header names lower-case; a repeated header keeps its last value."""

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, one piece per network read (chunked encoding already removed)."""
        conn = self._conn
        while True:
            if conn.body:
                yield conn.take()
            if conn.complete:
                return
            if conn.lost is not None or conn.transport is None:
                raise conn.lost or HttpError("the member closed the connection")
            await conn.wait(self._timeout)

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([part async for part in self.chunks()])

    async def text(self) -> str:
        """The whole body as text (UTF-8; undecodable bytes replaced)."""
        return (await self.read()).decode("utf-8", "replace")


class HttpClient:
    """Requests to one server (``base_url``'s scheme, host and port; its path prefixes every request).

    Args:
        base_url: ``http://host:port/prefix`` or ``https://…``.
        headers: Sent with every request (e.g. ``Authorization``).
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for the reply's headers, and between two reads of its body.
    """

    def __init__(
        self, base_url: str, *, headers: dict[str, str] | None = None, connect_timeout: float, read_timeout: float
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        fixed = {"host": host_header, "user-agent": "mcphive", **{k.lower(): v for k, v in (headers or {}).items()}}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: deque[_Connection] = deque()
        self._busy: set[_Connection] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def request(self, method: str, path: str, json_body: bytes | None = None) -> AsyncIterator[HttpResponse]:
        """Send ``method path`` (with ``json_body`` as ``application/json``) and yield the reply once its
        headers are in. Leaving the block early closes the connection (the server sees the client go);
        a reply read to its end leaves the connection for the next request.

        Raises:
            HttpError: the connection failed or the reply was not HTTP (:class:`HttpTimeout`: too slow).
        """
        if self._closed:
            raise HttpError("the client is closed")
        head = f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._head
        if json_body is not None:
            head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(json_body)
        message = head + b"\r\n" + (json_body or b"")
        conn = await self._send(message)
        try:
            while not conn.headers_done:
                await conn.wait(self.read_timeout)
            yield HttpResponse(conn, self.read_timeout)
        finally:
            self._release(conn)

    async def _send(self, message: bytes) -> _Connection:
        """A connection with ``message`` written and the first byte of a reply under way.

        A reused connection the server closed while idle gets the request again on a new one, once: the
        server never saw it (no byte of a reply came back).
        """
        conn = self._reusable()
        if conn is not None:
            conn.transport.write(message)  # type: ignore[union-attr]
            try:
                await conn.wait(self.read_timeout)
            except HttpError:  # no reply in time
                self._release(conn)
                raise
            if conn.received or conn.lost is None:
                return conn
            self._release(conn)  # closed before a byte of a reply: the server never took the request
        conn = await self._connect()
        conn.transport.write(message)  # type: ignore[union-attr]
        return conn

    def _reusable(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the likeliest to be alive
            if conn.transport is not None and conn.lost is None and now - conn.idle_since < _IDLE_FOR:
                conn._reset()
                self._busy.add(conn)
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except TimeoutError:
            raise HttpTimeout(
                f"could not connect to {self._host}:{self._port} within {self.connect_timeout:g} s"
            ) from None
        except OSError as e:
            raise HttpError(f"could not connect to {self._host}:{self._port}: {e.strerror or e}") from e
        self._busy.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        if conn.reusable and not self._closed and len(self._idle) < _MAX_IDLE:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    async def aclose(self) -> None:
        """Close every connection; requests after this raise :class:`HttpError`."""
        self._closed = True
        for conn in (*self._idle, *self._busy):
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
        self._busy.clear()
        await asyncio.sleep(0)  # let the transports finish closing inside this loop
