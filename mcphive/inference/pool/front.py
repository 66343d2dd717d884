"""A minimal OpenAI-compatible HTTP front over a :class:`~mcphive.inference.pool.PoolModel`.

``POST /v1/chat/completions`` (plain or streamed as server-sent events), ``GET /v1/models``,
``GET /health`` and ``GET /metrics`` (Prometheus text: per-member in-flight count and breaker
state, request counters). Bearer tokens and per-key rate limits come from :mod:`mcphive.policy`;
``/health`` is open so load balancers can probe it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, cast

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatRequest, ChatResponse
from mcphive.inference.pool.gpu import GpuSampler, render_gpu_metrics
from mcphive.inference.pool.pool import PoolModel
from mcphive.policy import (
    Authenticator,
    PolicyConfig,
    PolicyViolation,
    RateLimited,
    RateLimiter,
    Unauthenticated,
    check_host,
    check_size,
)

__all__ = ["build_front", "parse_chat_body", "render_metrics"]

logger = logging.getLogger(__name__)

_BREAKER_STATES = ("closed", "open", "half_open")
_HOSTS_REMEMBERED = 64


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _content(value: Any) -> str:
    """A message's text: a string, or the text parts of an OpenAI content list."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        return "".join(str(p.get("text", "")) for p in value if isinstance(p, dict) and p.get("type") == "text")
    raise ValueError("message content must be a string or a list of content parts")


def parse_chat_body(body: Any) -> tuple[ChatRequest, bool]:
    """The :class:`ChatRequest` and ``stream`` flag of an OpenAI chat-completions body.

    Raises:
        ValueError: the body is not a chat-completions request (the message says which field).
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise ValueError("the body must be a JSON object with a non-empty 'messages' list")
    messages = []
    for item in body["messages"]:
        if not isinstance(item, dict):
            raise ValueError("each message must be an object with 'role' and 'content'")
        role = "system" if item.get("role") == "developer" else item.get("role")
        messages.append(ChatMessage(role=role, content=_content(item.get("content"))))
    fields: dict[str, Any] = {"messages": messages}
    tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if tokens is not None:
        fields["max_tokens"] = tokens
    if body.get("temperature") is not None:
        fields["temperature"] = body["temperature"]
    # An extension field, as vLLM's own extra parameters sit beside OpenAI's: send this one to the fallback.
    if body.get("mcphive_hard") is not None:
        fields["hard"] = body["mcphive_hard"]
    return ChatRequest(**fields), bool(body.get("stream", False))


def _completion(response: ChatResponse, model: str, request_id: str) -> dict[str, Any]:
    usage = response.usage
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.message.content},
                "finish_reason": response.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
    }


def _chunk(request_id: str, model: str, delta: dict[str, str], finish: str | None) -> str:
    event = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(event)}\n\n"


_DONE = "data: [DONE]\n\n"


class _EventStream(StreamingResponse):
    """Server-sent events where the chunk ending in ``[DONE]`` also ends the body.

    Starlette sends the end of a streamed body as a write of its own; here it leaves with the last
    event, one write (and one wake-up of the client) fewer per streamed reply.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the body, and stop it (and with it the member's request) if the client goes away.

        Starlette watches for the disconnect with an anyio task group, ~75 µs a request; two plain
        asyncio tasks do the same for a fraction. ``http.disconnect`` arrives when the client leaves,
        or, as ASGI has it, once the response is complete.
        """
        body = asyncio.ensure_future(self.stream_response(send))
        listener = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait((body, listener), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listener.cancel()
            if not body.done():  # the client left (or this task is cancelled): end the reply
                body.cancel()
                await asyncio.wait((body,))
        if not body.cancelled():
            body.result()  # the body's own error, if it failed

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        ended = False
        async for chunk in self.body_iterator:
            text = chunk if isinstance(chunk, str) else bytes(chunk).decode(self.charset)
            ended = text.endswith(_DONE)
            await send({"type": "http.response.body", "body": text.encode(self.charset), "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def render_metrics(pool: PoolModel, requests: Counter[tuple[str, int]]) -> str:
    """The front's Prometheus page: per-member in-flight, breaker state and outcomes, and request counts."""
    lines = [
        "# HELP mcphive_pool_member_in_flight Requests sent to the member and not yet finished.",
        "# TYPE mcphive_pool_member_in_flight gauge",
    ]
    status = pool.status()
    lines += [f'mcphive_pool_member_in_flight{{member="{m["url"]}"}} {m["in_flight"]}' for m in status]
    lines += [
        "# HELP mcphive_pool_member_breaker_state 1 for the member's current circuit-breaker state.",
        "# TYPE mcphive_pool_member_breaker_state gauge",
    ]
    for m in status:
        lines += [
            f'mcphive_pool_member_breaker_state{{member="{m["url"]}",state="{s}"}} {int(m["breaker"] == s)}'
            for s in _BREAKER_STATES
        ]
    for key, help_text in (("served", "Requests the member answered."), ("failed", "Requests the member failed.")):
        lines += [
            f"# HELP mcphive_pool_member_{key}_total {help_text}",
            f"# TYPE mcphive_pool_member_{key}_total counter",
        ]
        lines += [f'mcphive_pool_member_{key}_total{{member="{m["url"]}"}} {m[key]}' for m in status]
    for key, help_text in (
        ("input_tokens", "Prompt tokens of the replies the member served."),
        ("output_tokens", "Completion tokens of the replies the member served."),
    ):
        lines += [
            f"# HELP mcphive_pool_member_{key}_total {help_text}",
            f"# TYPE mcphive_pool_member_{key}_total counter",
        ]
        lines += [f'mcphive_pool_member_{key}_total{{member="{m["url"]}"}} {m[key]}' for m in status]
    fallback = pool.fallback.name if pool.fallback is not None else ""
    lines += [
        "# HELP mcphive_pool_spill_configured 1 when a fallback model (the label) answers what no member can.",
        "# TYPE mcphive_pool_spill_configured gauge",
        f"mcphive_pool_spill_configured{{fallback={json.dumps(fallback, ensure_ascii=False)}}} {int(bool(fallback))}",
    ]
    if pool.spill.price is not None:
        lines += [
            "# HELP mcphive_pool_spill_price_usd_per_million_tokens The fallback's configured price.",
            "# TYPE mcphive_pool_spill_price_usd_per_million_tokens gauge",
        ]
        lines += [
            f'mcphive_pool_spill_price_usd_per_million_tokens{{direction="{d}"}} {price}'
            for d, price in zip(("input", "output"), pool.spill.price, strict=True)
        ]
    spill = pool.spill_status()
    for key, help_text in (
        ("requests", "Requests the fallback model answered because no member could."),
        ("input_tokens", "Prompt tokens sent to the fallback model."),
        ("output_tokens", "Completion tokens from the fallback model."),
        ("cost_usd", "What the fallback's tokens cost, in US dollars, at the configured price."),
    ):
        lines += [
            f"# HELP mcphive_pool_spill_{key}_total {help_text}",
            f"# TYPE mcphive_pool_spill_{key}_total counter",
            f"mcphive_pool_spill_{key}_total {spill[key]}",
        ]
    lines += [
        "# HELP mcphive_front_requests_total Requests to the front by route and HTTP status.",
        "# TYPE mcphive_front_requests_total counter",
    ]
    lines += [
        f'mcphive_front_requests_total{{route="{route}",code="{code}"}} {count}'
        for (route, code), count in sorted(requests.items())
    ]
    return "\n".join(lines) + "\n"


class _Front:
    """The routes' shared state: the pool, the policy and the request counters."""

    def __init__(self, pool: PoolModel, policy: PolicyConfig, bind_host: str, gpus: GpuSampler | None) -> None:
        self.pool = pool
        self.policy = policy
        self.bind_host = bind_host
        self.gpus = gpus
        self.authenticator = Authenticator(policy.tokens, required=policy.auth_required(bind_host))
        self.limiter = RateLimiter(policy.rate_limit)
        self.requests: Counter[tuple[str, int]] = Counter()
        self._good_hosts: set[str | None] = set()

    def admit(self, request: Request) -> None:
        """Apply host check, auth, size limit and the caller's rate limit.

        Raises:
            PolicyViolation: the request is refused; its ``status`` is the HTTP answer.
        """
        host = request.headers.get("host")
        if host not in self._good_hosts:
            check_host(host, bind_host=self.bind_host, allowed=self.policy.allowed_hosts)
            # Parsing the address costs tens of µs a request; the few names callers use are remembered
            # (bounded: a caller making up names gets them checked, not stored).
            if len(self._good_hosts) < _HOSTS_REMEMBERED:
                self._good_hosts.add(host)
        grant = self.authenticator.authenticate(request.headers.get("authorization"))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            check_size(int(declared), self.policy.max_request_bytes)
        client = request.client.host if request.client else "unknown"
        # A token's requests share one bucket wherever they come from; anonymous callers are keyed by address.
        self.limiter.check(f"token:{grant.token_name}" if grant.token_name else f"addr:{client}")

    def counted(
        self, route: str, handler: Callable[[Request], Any], *, guarded: bool = True
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                if guarded:
                    self.admit(request)
                response: Response = await handler(request)
            except PolicyViolation as e:
                response = self._refusal(e)
            self.requests[(route, response.status_code)] += 1
            return response

        return endpoint

    @staticmethod
    def _refusal(error: PolicyViolation) -> Response:
        headers: dict[str, str] = {}
        if isinstance(error, Unauthenticated):
            headers["www-authenticate"] = 'Bearer realm="mcphive"'
        if isinstance(error, RateLimited):
            headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
        kind = "rate_limit_exceeded" if isinstance(error, RateLimited) else "invalid_request_error"
        return _error(error.status, str(error), kind, headers)

    async def chat(self, request: Request) -> Response:
        body = await request.body()
        check_size(len(body), self.policy.max_request_bytes)
        try:
            chat_request, stream = parse_chat_body(json.loads(body or b"null"))
        except (ValueError, ValidationError) as e:
            return _error(400, f"not a chat-completions request: {e}", "invalid_request_error")
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        if stream:
            return _EventStream(self._events(chat_request, request_id), media_type="text/event-stream")
        try:
            response = await self.pool.chat(chat_request)
        except ModelUnavailable as e:
            return _error(503, str(e), "service_unavailable", {"retry-after": "1"})
        return JSONResponse(_completion(response, self.pool.model, request_id))

    async def _events(self, request: ChatRequest, request_id: str) -> AsyncIterator[str]:
        # Each yield is one write to the socket: the role chunk leaves with the first text, and the
        # stop chunk with [DONE] (and the end of the body, see _EventStream), so a short reply costs
        # two writes after the headers rather than five.
        model = self.pool.model
        head = _chunk(request_id, model, {"role": "assistant", "content": ""}, None)
        try:
            async with contextlib.aclosing(cast(AsyncGenerator[str, None], self.pool.stream(request))) as chunks:
                async for text in chunks:
                    yield head + _chunk(request_id, model, {"content": text}, None)
                    head = ""
        except ModelUnavailable as e:
            # Headers (200) are gone already: the failure travels as an error event, as OpenAI's API does.
            logger.warning("streamed reply %s failed: %s", request_id, e)
            yield head + f"data: {json.dumps({'error': {'message': str(e), 'type': 'service_unavailable'}})}\n\n"
            return
        yield head + _chunk(request_id, model, {}, "stop") + _DONE

    async def models(self, request: Request) -> Response:
        names = {self.pool.model} | {n for m in self.pool.members for n in (m.served_models or ())}
        names.discard("default")
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "mcphive"} for n in sorted(names or {"default"})]
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        usable = [m for m in self.pool.status() if m["breaker"] != "open"]
        status = 200 if usable else 503
        return JSONResponse({"status": "ok" if usable else "unavailable", "members": len(usable)}, status_code=status)

    async def metrics(self, request: Request) -> Response:
        page = render_metrics(self.pool, self.requests)
        if self.gpus is not None:
            page += "".join(f"{line}\n" for line in render_gpu_metrics(await self.gpus.sample()))
        return PlainTextResponse(page, media_type="text/plain; version=0.0.4")


def build_front(
    pool: PoolModel,
    policy: PolicyConfig | None = None,
    *,
    bind_host: str = "127.0.0.1",
    gpus: GpuSampler | None = None,
) -> Starlette:
    """The ASGI app serving ``pool``; it opens the pool on startup and closes it on shutdown.

    Args:
        pool: The pool to serve (not yet entered; the app's lifespan enters it).
        policy: Tokens, rate limit, size limit; default: :class:`PolicyConfig` with ``$MCPHIVE_TOKENS``.
        bind_host: The address the server binds; off loopback a token is always required.
        gpus: Where ``/metrics`` gets GPU figures (``mcphive_pool_gpu_*``); ``None``: no GPU section.

    Raises:
        ConfigError: auth is required (not loopback, or ``require_auth``) but no token is configured.
    """
    front = _Front(pool, (policy or PolicyConfig()).with_env_tokens(), bind_host, gpus)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with pool:
            yield

    routes = [
        Route("/v1/chat/completions", front.counted("chat", front.chat), methods=["POST"]),
        Route("/v1/models", front.counted("models", front.models), methods=["GET"]),
        Route("/health", front.counted("health", front.health, guarded=False), methods=["GET"]),
        Route("/metrics", front.counted("metrics", front.metrics), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.front = front
    return app
