"""One pool member: its HTTP client, what the pool knows of its load, and its circuit breaker."""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mcphive.inference._schema import answer_max_chars, parse_choice, plain_messages, tool_choice_schema, tools_prompt
from mcphive.inference.base import ChatMessage, ChatRequest, ChatResponse, ModelToolCall
from mcphive.inference.openai_compat import OpenAICompatModel
from mcphive.inference.pool._http import HttpClient, HttpError
from mcphive.inference.pool.metrics import LoadMetrics
from mcphive.types import Usage

__all__ = ["Capabilities", "CircuitBreaker", "MemberClient", "MemberFailure", "MemberState", "ToolMode"]

FailureKind = Literal["connect", "timeout", "overloaded", "server", "garbage", "rejected"]
ToolMode = Literal["native", "json_schema"]
"""How tools reach a member: OpenAI ``tools`` (the server's own tool-call parser), or a ``response_format``
JSON schema that admits exactly one valid call (or an answer), read back into a tool call by mcphive."""

_ids = itertools.count(1)
_PROBE_TOOL = {
    "type": "function",
    "function": {"name": "probe", "description": "Capability probe.", "parameters": {"type": "object"}},
}
_PROBE_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "probe",
        "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    },
}


@dataclass(frozen=True)
class Capabilities:
    """What a member's server supports, as probed with two one-token requests and ``/v1/models``.

    Attributes:
        tools: It accepts ``tools`` with ``tool_choice: "auto"`` (vLLM only with ``--enable-auto-tool-choice``).
        structured: It accepts ``response_format`` of type ``json_schema``.
        max_context: Its context length in tokens (vLLM's ``max_model_len``); ``None`` when not reported.
    """

    tools: bool
    structured: bool
    max_context: int | None = None

    @property
    def tool_mode(self) -> ToolMode:
        """Native tool calls where the server parses them, else schema-constrained JSON where it can."""
        return "json_schema" if self.structured and not self.tools else "native"


class MemberFailure(Exception):
    """A member could not answer; ``kind`` says whether another member may be tried.

    ``rejected`` (a 4xx other than 429) is the request's fault: it is neither retried nor counted
    against the member. Every other kind is retried elsewhere if no text has been streamed yet.
    """

    def __init__(self, kind: FailureKind, detail: str, *, status: int | None = None, retry_after: float = 0.0):
        super().__init__(detail)
        self.kind: FailureKind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def trips_breaker(self) -> bool:
        """Whether this failure counts towards opening the member's circuit breaker."""
        return self.kind in ("connect", "timeout", "server", "garbage")


def parse_retry_after(value: str | None, cap: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), capped at ``cap``."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, cap)) if math.isfinite(seconds) else 0.0


def _classify(status: int, text: str, retry_after: str | None, cap: float) -> MemberFailure:
    detail = f"HTTP {status}: {text[:200]}"
    if status == 429:
        return MemberFailure("overloaded", detail, status=status, retry_after=parse_retry_after(retry_after, cap))
    if status >= 500:
        return MemberFailure("server", detail, status=status, retry_after=parse_retry_after(retry_after, cap))
    return MemberFailure("rejected", detail, status=status)


def _transport(e: HttpError) -> MemberFailure:
    kind: FailureKind = "timeout" if isinstance(e, TimeoutError) else "connect"
    return MemberFailure(kind, str(e))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class MemberClient(OpenAICompatModel):
    """The OpenAI-compatible client of one member, raising :class:`MemberFailure` instead of a
    user-facing error so the pool can decide to retry. Request and reply mapping are inherited,
    plus the JSON-schema tool mode, token usage of streamed replies and the capability probe.

    Its HTTP goes through :class:`~mcphive.inference.pool._http.HttpClient` (keep-alive connections
    parsed by ``httptools``) rather than the parent's ``httpx2``: the pool front relays every request
    through here, and its CPU per request is the front's added latency (``benchmarks/pool_overhead.py``).
    Connections open at the first request, inside the event loop that uses them.

    Args:
        base_url: The member's API root, version prefix included (``http://host:8000/v1``).
        model: The model name sent in requests.
        api_key: Sent as a bearer token when given.
        timeout: Seconds the member may take to connect, and between two reads of its reply.
    """

    retry_after_cap: float = 30.0

    def __init__(self, base_url: str, model: str = "default", *, api_key: str | None = None, timeout: float = 120.0):
        # Not the parent's __init__, which opens an httpx2 client this class would never use.
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.configured_model = model
        self.name = f"openai:{model}"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._member_http: HttpClient | None = None

    @property
    def _http(self) -> HttpClient:
        if self._member_http is None:
            self._member_http = HttpClient(
                self.base_url, headers=self._headers, connect_timeout=self._timeout, read_timeout=self._timeout
            )
        return self._member_http

    async def aclose(self) -> None:
        """Close the member's connections (a later request opens new ones)."""
        if self._member_http is not None:
            await self._member_http.aclose()
            self._member_http = None

    async def chat(self, request: ChatRequest, *, tool_mode: ToolMode = "native") -> ChatResponse:
        """One non-streamed completion."""
        body = self._member_body(request, tool_mode)
        try:
            async with self._http.request("POST", "/chat/completions", _json(body)) as response:
                text = await response.text()
                if response.status >= 400:
                    raise _classify(response.status, text, response.headers.get("retry-after"), self.retry_after_cap)
        except HttpError as e:
            raise _transport(e) from e
        try:
            reply = self._response(json.loads(text), request)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise MemberFailure("garbage", f"not an OpenAI chat completion: {text[:200]!r}") from e
        return _read_choice(reply, request) if "response_format" in body else reply

    async def stream(self, request: ChatRequest) -> AsyncGenerator[str, None]:
        """Stream the reply's text; a failure after the first chunk is raised as it is, with no retry."""
        async for event in self.stream_events(request):
            if isinstance(event, str):
                yield event

    async def stream_events(self, request: ChatRequest) -> AsyncGenerator[str | Usage, None]:
        """Stream the reply: its text chunks, then its token usage where the server reports it
        (``stream_options.include_usage``; servers that ignore the option send none).

        The body is split into lines per network read rather than read line by line: one wake-up per
        read, and no limit on a line's length.
        """
        body = self._member_body(request, "native") | {"stream": True, "stream_options": {"include_usage": True}}
        try:
            async with self._http.request("POST", "/chat/completions", _json(body)) as response:
                if response.status >= 400:
                    text = await response.text()
                    raise _classify(response.status, text, response.headers.get("retry-after"), self.retry_after_cap)
                rest = b""
                done = False
                async for data in response.chunks():
                    if done:
                        continue  # past [DONE]: read to the end, so the connection can serve the next request
                    *lines, rest = (rest + data).split(b"\n")
                    for line in lines:
                        event = _event(line)
                        if event is None:
                            done = True
                            break
                        if event:
                            yield event
                if not done and (last := _event(rest)):  # a last line without its newline
                    yield last
        except HttpError as e:
            raise _transport(e) from e

    def adopt_served_model(self, listed: Sequence[str]) -> None:
        """Send the model the server lists first when the pool names none (``"default"``).

        vLLM refuses a model name it does not serve (404), so "default" cannot go on the wire; the
        first name ``/v1/models`` lists is the served model itself (adapters and aliases follow it).
        """
        if self.configured_model == "default" and listed:
            self.model = listed[0]

    async def probe(self) -> Capabilities:
        """Ask the server what it supports: tool calls, JSON-schema output, context length.

        Raises:
            MemberFailure: it could not be asked (down, overloaded, broken); nothing is learnt.
        """
        base: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Say ok."}],
            "max_tokens": 1,
            "temperature": 0.0,
        }
        tools = await self._accepts(base | {"tools": [_PROBE_TOOL], "tool_choice": "auto"})
        structured = await self._accepts(base | {"response_format": _PROBE_SCHEMA})
        return Capabilities(tools=tools, structured=structured, max_context=await self._max_context())

    async def _accepts(self, body: dict[str, Any]) -> bool:
        try:
            async with self._http.request("POST", "/chat/completions", _json(body)) as response:
                text = await response.text()
        except HttpError as e:
            raise _transport(e) from e
        if response.status == 429 or response.status >= 500:
            raise _classify(response.status, text, response.headers.get("retry-after"), self.retry_after_cap)
        return response.status < 400

    async def _max_context(self) -> int | None:
        try:
            async with self._http.request("GET", "/models") as response:
                entries = json.loads(await response.read())["data"]
        except (HttpError, ValueError, KeyError, TypeError):
            return None
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict) or self.model not in ("default", entry.get("id")):
                continue
            if isinstance(value := entry.get("max_model_len"), int):
                return value
        return None

    def _member_body(self, request: ChatRequest, tool_mode: ToolMode) -> dict[str, Any]:
        tools = request.tools if request.tool_choice != "none" else []
        if not tools or tool_mode == "native":
            body = self._body(request)
            for tool in body.get("tools", ()):
                # Without "strict", vLLM's parsers let the arguments stray from the schema.
                tool["function"]["strict"] = True
            return body
        required = request.tool_choice == "required"
        schema = tool_choice_schema(tools, answer_chars=None if required else answer_max_chars(request.max_tokens))
        return {
            "model": self.model,
            "messages": plain_messages(request.messages, system_suffix=tools_prompt(tools, required=required)),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}},
        }


def _read_choice(reply: ChatResponse, request: ChatRequest) -> ChatResponse:
    """A reply constrained by :func:`tool_choice_schema`, turned into a tool call or an answer."""
    if reply.finish_reason == "length":
        return reply  # cut short: the JSON is incomplete, the caller sees the raw text and "length"
    parsed = parse_choice(reply.message.content, request.tools)
    if isinstance(parsed, tuple):
        call = ModelToolCall(id=f"call_{next(_ids)}", name=parsed[0], arguments=parsed[1])
        return reply.model_copy(
            update={"message": ChatMessage(role="assistant", tool_calls=[call]), "finish_reason": "tool_calls"}
        )
    if isinstance(parsed, str):
        return reply.model_copy(update={"message": ChatMessage(role="assistant", content=parsed)})
    return reply.model_copy(update={"finish_reason": "error"})


def _event(line: bytes) -> str | Usage | None:
    """One server-sent event line: its text, its usage, ``""`` when it has neither, ``None`` at ``[DONE]``."""
    if not line.strip() or line.startswith(b":"):
        return ""
    if not line.startswith(b"data:"):
        raise MemberFailure("garbage", f"not a server-sent event: {line[:200]!r}")
    payload = line[len(b"data:") :].strip()
    if payload == b"[DONE]":
        return None
    try:
        data = json.loads(payload)
        choices = data["choices"]
        if not choices:
            usage = data.get("usage") or {}
            return Usage(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
                model_calls=1,
            )
        delta = choices[0].get("delta") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise MemberFailure("garbage", f"malformed stream event {payload[:200]!r}") from e
    return str(delta.get("content") or "")


@dataclass
class CircuitBreaker:
    """Closed, open after ``threshold`` consecutive failures, half-open once ``cooldown`` has passed.

    A half-open member gets probed (health check, or one request); a success closes the breaker,
    a failure opens it again for another cooldown.
    """

    threshold: int = 3
    cooldown: float = 5.0
    failures: int = 0
    opened_at: float | None = None

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        """The breaker's state now."""
        if self.opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self.opened_at >= self.cooldown else "open"

    def success(self) -> None:
        """A request or probe succeeded: close."""
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        """A request or probe failed in a way that counts against the member."""
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            self.opened_at = time.monotonic()


@dataclass(eq=False)
class MemberState:
    """What the pool knows of one member.

    Attributes:
        url: The member's ``/v1`` root.
        client: Its HTTP client.
        in_flight: Requests this process has sent it and not yet finished.
        served: Requests it answered; ``failed``: requests it failed (each retried elsewhere or raised).
        metrics: The last load figures from its ``/metrics``; ``None`` when it has none.
        metrics_at: ``time.monotonic()`` of the last successful poll.
        ours_at_poll: How many of this process's requests the last poll's figures may include.
        has_metrics: ``False`` once the member proved to expose no vLLM metrics (llama.cpp).
        cooling_until: ``time.monotonic()`` before which it asked (429 + Retry-After) not to be sent work.
        served_models: Model names from ``/v1/models``; ``None`` until known.
        capabilities: What its server supports; ``None`` until probed.
        usage: Tokens of the replies it served (streamed ones where the server reports usage).
        last_error: Why it last failed, for error messages.
    """

    url: str
    client: MemberClient
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    in_flight: int = 0
    served: int = 0
    failed: int = 0
    metrics: LoadMetrics | None = None
    metrics_at: float = 0.0
    ours_at_poll: int = 0
    has_metrics: bool | None = None
    cooling_until: float = 0.0
    served_models: frozenset[str] | None = None
    capabilities: Capabilities | None = None
    usage: Usage = field(default_factory=Usage)
    last_error: str = ""

    @property
    def root(self) -> str:
        """The server root (the URL without its ``/v1`` suffix), where ``/metrics`` and ``/health`` live."""
        return self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url

    def observe(self, metrics: LoadMetrics, ours: int) -> None:
        """Take a poll's figures; ``ours`` is how many of this process's requests they may include
        (the most this process had in flight while the poll was under way)."""
        self.metrics, self.metrics_at, self.ours_at_poll = metrics, time.monotonic(), ours

    def load(self, stale_after: float) -> float:
        """Requests ahead of a new one: this process's own, plus the others' the server last reported.

        This process's count is exact and current; a poll is up to one interval old. The server's
        figure minus this process's requests at poll time is the load other clients put on it, which
        is added to the current own count — so a request of ours that finished since the poll stops
        counting at once (taking the larger of the two counts, a member that had just finished a
        request looked busy until the next poll, and new sessions went to the other one).
        A member that exposes metrics but whose figures are older than ``stale_after`` is treated as
        saturated (``inf``): nobody knows what it is doing.
        """
        if not self.has_metrics:
            return float(self.in_flight)
        if self.metrics is None or time.monotonic() - self.metrics_at > stale_after:
            return math.inf
        others = max(0.0, self.metrics.running + self.metrics.waiting - self.ours_at_poll)
        return self.in_flight + others
