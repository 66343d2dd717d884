"""What mcphive's two ASGI apps (the MCP HTTP layer and the pool front) share: the size-limited body reader."""

from __future__ import annotations

from starlette.types import Receive

from mcphive.policy import check_size

__all__ = ["ClientGone", "read_body"]


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
