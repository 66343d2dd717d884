"""A minimal OpenAI-compatible HTTP front over a :class:`~mcphive.inference.pool.PoolModel`.

``POST /v1/chat/completions`` (plain or streamed as server-sent events), ``GET /v1/models``,
``GET /health`` and ``GET /metrics`` (Prometheus text: per-member in-flight count and breaker
state, request counters). Bearer tokens and per-key rate limits come from :mod:`mcphive.policy`;
``/health`` is open so load balancers can probe it.

The front is a plain ASGI application served by uvicorn (on uvloop and httptools), not a Starlette
one: it has four routes, and Starlette's request, response and routing objects cost ~150 µs of CPU
a streamed request here — more than the rest of the front's own work (``benchmarks/pool_overhead.py``).
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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from mcphive._asgi import ClientGone, read_body
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


Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class _Reply:
    """A whole reply: status, body, content type and any extra headers."""

    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: Headers = ()

    async def __call__(self, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.content_type), (b"content-length", b"%d" % len(self.body)), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def _json(value: Any, status: int = 200, headers: Headers = ()) -> _Reply:
    return _Reply(status, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), headers=headers)


def _error(status: int, message: str, kind: str, headers: Headers = ()) -> _Reply:
    return _json({"error": {"message": message, "type": kind, "code": status}}, status, headers)


def _one_line(error: ValidationError) -> str:
    """A validation error as ``field: what is wrong``, without pydantic's help links and line breaks."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors())


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


_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class _EventStream:
    """A reply of server-sent events.

    The headers leave with the first event, not before: a pool that cannot answer at all (every member
    down or saturated, no fallback) raises :class:`ModelUnavailable` before any text, and the client
    gets a real 503 with ``Retry-After`` — which OpenAI's clients retry — instead of a 200 whose stream
    holds an error. A failure after the first event can only travel in the stream. The chunk ending in
    ``[DONE]`` also ends the body (one write, and one wake-up of the client, fewer per reply).
    """

    def __init__(self, events: AsyncIterator[str]) -> None:
        self.events = events
        self.status = 200
        """200, or the status of the error reply sent instead of the stream."""

    async def __call__(self, receive: Receive, send: Send) -> None:
        """Stream the events, and stop them (and with them the member's request) if the client goes away.

        ``http.disconnect`` arrives when the client leaves or, as ASGI has it, once the reply is complete;
        two plain asyncio tasks watch for whichever comes first (an anyio task group costs ~75 µs a request).
        """
        body = asyncio.ensure_future(self._write(receive, send))
        listener = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((body, listener), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listener.cancel()
            if not body.done():  # the client left (or this task is cancelled): end the reply
                body.cancel()
                await asyncio.wait((body,))
        if not body.cancelled():
            body.result()  # the body's own error, if it failed

    async def _write(self, receive: Receive, send: Send) -> None:
        try:
            text = await anext(self.events, None)
        except ModelUnavailable as e:
            refusal = _error(503, str(e), "service_unavailable", ((b"retry-after", b"1"),))
            self.status = refusal.status
            await refusal(receive, send)
            return
        await send({"type": "http.response.start", "status": self.status, "headers": _SSE_HEADERS})
        while text is not None:
            ended = text.endswith(_DONE)
            await send({"type": "http.response.body", "body": text.encode(), "more_body": not ended})
            if ended:
                return
            text = await anext(self.events, None)
        await send({"type": "http.response.body", "body": b"", "more_body": False})  # ended without [DONE]


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


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


@dataclass(frozen=True)
class _Request:
    """What the routes need of one HTTP request: its headers (names lower-case), caller and body reader."""

    headers: dict[str, str]
    client: str
    receive: Receive

    @classmethod
    def of(cls, scope: Scope, receive: Receive) -> _Request:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        client = scope.get("client")
        return cls(headers, client[0] if client else "unknown", receive)

    async def body(self, limit: int) -> bytes:
        """The whole body (see :func:`mcphive._asgi.read_body`)."""
        return await read_body(self.receive, limit)


Reply = _Reply | _EventStream
Handler = Callable[[_Request], Awaitable[Reply]]


@dataclass(frozen=True)
class _Route:
    name: str
    method: str
    handler: Handler
    guarded: bool = True


class _Front:
    """The front's ASGI application: routes, policy checks, request counters, and the pool's lifetime."""

    def __init__(self, pool: PoolModel, policy: PolicyConfig, bind_host: str, gpus: GpuSampler | None) -> None:
        self.pool = pool
        self.policy = policy
        self.bind_host = bind_host
        self.gpus = gpus
        self.authenticator = Authenticator(policy.tokens, required=policy.auth_required(bind_host))
        self.limiter = RateLimiter(policy.rate_limit)
        self.requests: Counter[tuple[str, int]] = Counter()
        self._good_hosts: set[str | None] = set()
        self.routes = {
            "/v1/chat/completions": _Route("chat", "POST", self.chat),
            "/v1/models": _Route("models", "GET", self.models),
            "/health": _Route("health", "GET", self.health, guarded=False),
            "/metrics": _Route("metrics", "GET", self.metrics),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Open the pool at startup, close it at shutdown; a pool that cannot open fails the startup."""
        await receive()  # lifespan.startup
        started = False
        try:
            async with self.pool:
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except Exception as e:
            logger.exception("the pool front's %s failed", "shutdown" if started else "startup")
            kind = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": kind, "message": f"{type(e).__name__}: {e}"})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"])
        method = scope["method"]
        reply: Reply
        if route is None:
            name, reply = "unknown", _error(404, f"no route {scope['path']}", "not_found_error")
        elif method != route.method and not (method == "HEAD" and route.method == "GET"):
            allowed = f"{route.method}, HEAD" if route.method == "GET" else route.method
            message = f"{method} is not allowed here; use {allowed}"
            name, reply = route.name, _error(405, message, "invalid_request_error", ((b"allow", allowed.encode()),))
        else:
            name, request = route.name, _Request.of(scope, receive)
            try:
                if route.guarded:
                    self.admit(request)
                reply = await route.handler(request)
            except PolicyViolation as e:
                reply = self._refusal(e)
            except ClientGone:
                return  # nobody to answer
        try:
            await reply(receive, send)
        finally:
            self.requests[(name, reply.status)] += 1  # after: a stream's status is known once it starts

    def admit(self, request: _Request) -> None:
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
        # A token's requests share one bucket wherever they come from; anonymous callers are keyed by address.
        self.limiter.check(f"token:{grant.token_name}" if grant.token_name else f"addr:{request.client}")

    @staticmethod
    def _refusal(error: PolicyViolation) -> _Reply:
        headers: list[tuple[bytes, bytes]] = []
        if isinstance(error, Unauthenticated):
            headers.append((b"www-authenticate", b'Bearer realm="mcphive"'))
        if isinstance(error, RateLimited):
            headers.append((b"retry-after", b"%d" % max(1, math.ceil(error.retry_after))))
        kind = "rate_limit_exceeded" if isinstance(error, RateLimited) else "invalid_request_error"
        return _error(error.status, str(error), kind, tuple(headers))

    async def chat(self, request: _Request) -> Reply:
        body = await request.body(self.policy.max_request_bytes)
        try:
            parsed = json.loads(body or b"null")
            chat_request, stream = parse_chat_body(parsed)
        except ValidationError as e:
            return _error(400, f"not a chat-completions request: {_one_line(e)}", "invalid_request_error")
        except ValueError as e:
            return _error(400, f"not a chat-completions request: {e}", "invalid_request_error")
        model = parsed.get("model")
        names = self._model_names()
        if model is None or model == "default":
            model = next(iter(names)) if len(names) == 1 else self.pool.model
        elif model not in names and all(m.served_models is not None for m in self.pool.members):
            # (While a member's models are unknown — down since the start — the pool itself decides.)
            return _json(
                {"error": {"message": f"the pool does not serve model {model!r}; it serves: {', '.join(sorted(names))}",
                           "type": "invalid_request_error", "code": "model_not_found"}},
                404,
            )  # fmt: skip
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        if stream:
            return _EventStream(self._events(chat_request, request_id, model))
        try:
            response = await self.pool.chat(chat_request)
        except ModelUnavailable as e:
            return _error(503, str(e), "service_unavailable", ((b"retry-after", b"1"),))
        return _json(_completion(response, model, request_id))

    def _model_names(self) -> set[str]:
        """The names a request may ask for, as ``/v1/models`` lists them: the pool's and what members serve."""
        names = {self.pool.model} | {n for m in self.pool.members for n in (m.served_models or ())}
        names.discard("default")
        return names or {"default"}

    async def _events(self, request: ChatRequest, request_id: str, model: str) -> AsyncIterator[str]:
        # Each yield is one write to the socket: the role chunk leaves with the first text, and the
        # stop chunk with [DONE] (and the end of the body, see _EventStream), so a short reply costs
        # two writes after the headers rather than five.
        head = _chunk(request_id, model, {"role": "assistant", "content": ""}, None)
        try:
            async with contextlib.aclosing(cast(AsyncGenerator[str, None], self.pool.stream(request))) as chunks:
                async for text in chunks:
                    yield head + _chunk(request_id, model, {"content": text}, None)
                    head = ""
        except ModelUnavailable as e:
            if head:
                raise  # nothing sent yet: _EventStream answers 503
            # The headers (200) are gone: the failure travels as an error event, as OpenAI's API does.
            logger.warning("streamed reply %s failed: %s", request_id, e)
            yield head + f"data: {json.dumps({'error': {'message': str(e), 'type': 'service_unavailable'}})}\n\n"
            return
        yield head + _chunk(request_id, model, {}, "stop") + _DONE

    async def models(self, request: _Request) -> Reply:
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "mcphive"} for n in sorted(self._model_names())]
        return _json({"object": "list", "data": data})

    async def health(self, request: _Request) -> Reply:
        usable = [m for m in self.pool.status() if m["breaker"] != "open"]
        status = 200 if usable else 503
        return _json({"status": "ok" if usable else "unavailable", "members": len(usable)}, status)

    async def metrics(self, request: _Request) -> Reply:
        page = render_metrics(self.pool, self.requests)
        if self.gpus is not None:
            page += "".join(f"{line}\n" for line in render_gpu_metrics(await self.gpus.sample()))
        return _Reply(200, page.encode(), b"text/plain; version=0.0.4; charset=utf-8")


def build_front(
    pool: PoolModel,
    policy: PolicyConfig | None = None,
    *,
    bind_host: str = "127.0.0.1",
    gpus: GpuSampler | None = None,
) -> ASGIApp:
    """The ASGI app serving ``pool``; it opens the pool on startup and closes it on shutdown.

    Args:
        pool: The pool to serve (not yet entered; the app's lifespan enters it).
        policy: Tokens, rate limit, size limit; default: :class:`PolicyConfig` with ``$MCPHIVE_TOKENS``.
        bind_host: The address the server binds; off loopback a token is always required.
        gpus: Where ``/metrics`` gets GPU figures (``mcphive_pool_gpu_*``); ``None``: no GPU section.

    Raises:
        ConfigError: auth is required (not loopback, or ``require_auth``) but no token is configured.
    """
    return _Front(pool, (policy or PolicyConfig()).with_env_tokens(), bind_host, gpus)
