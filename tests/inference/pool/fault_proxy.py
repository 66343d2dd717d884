"""A fault-injecting HTTP proxy in front of a real llama.cpp member, for failover tests.

It forwards everything to the member unless told to misbehave: answer 429 with Retry-After,
answer 400 or 503, send a garbage body, stall, cut a stream after its first chunk, or stream a canned
reply cut at awkward bytes (``split``).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Literal

import anyio
import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

Mode = Literal["pass", "429", "400", "503", "garbage", "stall", "cut", "split"]

SPLIT_TEXT = "Héllo"
SPLIT_USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


class FaultProxy:
    """Runs in its own thread; ``mode`` applies to the next ``faults`` chat requests, then ``pass``."""

    def __init__(self, upstream_root: str) -> None:
        self.upstream = upstream_root
        self.mode: Mode = "pass"
        self.faults = 0
        self.retry_after = "1"
        self.hits: list[float] = []
        self._release = threading.Event()
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/{path:path}", self._forward, methods=["GET"]),
            ]
        )
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, mode: Mode, times: int = 1) -> None:
        self.mode, self.faults = mode, times
        self.hits.clear()

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "fault proxy did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self._release.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    async def _forward(self, request: Request) -> Response:
        async with httpx2.AsyncClient(timeout=30) as client:
            upstream = await client.get(f"{self.upstream}/{request.path_params['path']}")
        return Response(
            upstream.content, status_code=upstream.status_code, media_type=upstream.headers.get("content-type")
        )

    async def _chat(self, request: Request) -> Response:
        self.hits.append(time.monotonic())
        body = await request.body()
        mode: Mode = self.mode if self.faults > 0 else "pass"
        self.faults -= 1
        if mode == "429":
            return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": self.retry_after})
        if mode in ("400", "503"):
            return PlainTextResponse("injected failure", status_code=int(mode))
        if mode == "garbage":
            return PlainTextResponse("<html>definitely not json</html>")
        if mode == "stall":
            await anyio.to_thread.run_sync(self._release.wait, 15)
            return PlainTextResponse("too late", status_code=504)
        if mode == "cut":
            return StreamingResponse(self._cut(), media_type="text/event-stream")
        if mode == "split":
            return StreamingResponse(self._split(), media_type="text/event-stream")
        return await self._pass(body)

    async def _cut(self) -> AsyncIterator[bytes]:
        event = {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}
        yield f"data: {json.dumps(event)}\n\n".encode()
        raise ConnectionResetError("injected: the member died mid-stream")

    async def _split(self) -> AsyncIterator[bytes]:
        """SPLIT_TEXT and a usage event, as vLLM sends them, but in pieces cut mid-line and mid-character
        (inside the "é"), a few ms apart so they arrive as separate reads; the stream then ends without a
        newline after its last event and without [DONE], as a server that just closes would.
        """
        events: list[dict[str, object]] = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": SPLIT_TEXT[:3]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": SPLIT_TEXT[3:]}, "finish_reason": "stop"}]},
            {"choices": [], "usage": SPLIT_USAGE},
        ]
        body = "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events).rstrip("\n").encode()
        inside = body.index("é".encode()) + 1
        cuts = sorted({0, inside, *range(17, len(body), 41), len(body)})
        for start, end in itertools.pairwise(cuts):
            yield body[start:end]
            await anyio.sleep(0.005)

    async def _pass(self, body: bytes) -> Response:
        streaming = json.loads(body).get("stream", False)
        client = httpx2.AsyncClient(timeout=60)
        upstream_request = client.build_request(
            "POST", f"{self.upstream}/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        upstream = await client.send(upstream_request, stream=streaming)
        if not streaming:
            await client.aclose()
            return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()
                await client.aclose()

        return StreamingResponse(relay(), status_code=upstream.status_code, media_type="text/event-stream")
