"""What mcphive's two ASGI apps (the MCP HTTP layer and the pool front) share: the listening socket and the
size-limited body reader."""

from __future__ import annotations

import errno
import socket

from starlette.types import Receive

from mcphive.errors import UsageError
from mcphive.policy import check_size

__all__ = ["ClientGone", "http_url", "listening_socket", "read_body"]

_BIND_ADVICE = {
    errno.EADDRINUSE: "is in use; pick another port, or stop what listens there",
    errno.EACCES: "needs privileges this process lacks; pick a port above 1023",
    errno.EADDRNOTAVAIL: "is not an address of this machine; use 127.0.0.1 or one of its interfaces",
}


def http_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 host in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening (``port`` 0: a free one), for uvicorn's ``sockets=``.

    Listening before the server starts means a client told the address is never refused. The socket
    is created with ``IPPROTO_TCP``: asyncio sets ``TCP_NODELAY`` only then, and without it every
    keep-alive request waits ~40 ms on delayed ACKs.

    Raises:
        UsageError: the address is taken, privileged, or not this machine's (one line saying so).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        advice = _BIND_ADVICE.get(e.errno or 0)
        if advice is None:
            raise
        raise UsageError(f"cannot listen on {http_url(host, port).removeprefix('http://')}: it {advice}") from e
    except BaseException:
        sock.close()
        raise
    return sock


class ClientGone(Exception):
    """The client disconnected before sending its whole request: nobody to answer."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """A request's whole body, refused as soon as it passes ``limit`` bytes (a declared length is not trusted).

    Raises:
        RequestTooLarge: over ``limit`` (a :class:`~mcphive.policy.PolicyViolation`, HTTP 413).
        ClientGone: the client disconnected first.
    """
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        part = message.get("body", b"")
        size += len(part)
        check_size(size, limit)
        parts.append(part)
        if not message.get("more_body", False):
            return b"".join(parts)
