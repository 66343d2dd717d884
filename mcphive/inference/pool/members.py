"""One pool member: its HTTP client, what the pool knows of its load, and its circuit breaker."""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal

import httpx2

from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.openai_compat import OpenAICompatModel
from mcphive.inference.pool.metrics import LoadMetrics

__all__ = ["CircuitBreaker", "MemberClient", "MemberFailure", "MemberState"]

FailureKind = Literal["connect", "timeout", "overloaded", "server", "garbage", "rejected"]


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


def _transport(e: httpx2.TransportError) -> MemberFailure:
    kind: FailureKind = "timeout" if isinstance(e, httpx2.TimeoutException) else "connect"
    return MemberFailure(kind, f"{type(e).__name__}: {e}")


class MemberClient(OpenAICompatModel):
    """The OpenAI-compatible client of one member, raising :class:`MemberFailure` instead of a
    user-facing error so the pool can decide to retry. Request and reply mapping are inherited.
    """

    retry_after_cap: float = 30.0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One non-streamed completion."""
        try:
            response = await self._client.post(f"{self.base_url}/chat/completions", json=self._body(request))
        except httpx2.TransportError as e:
            raise _transport(e) from e
        if response.status_code >= 400:
            raise _classify(
                response.status_code, response.text, response.headers.get("retry-after"), self.retry_after_cap
            )
        try:
            return self._response(response.json())
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise MemberFailure("garbage", f"not an OpenAI chat completion: {response.text[:200]!r}") from e

    async def stream(self, request: ChatRequest) -> AsyncGenerator[str, None]:
        """Stream the reply; a failure after the first chunk is raised as it is, with no retry."""
        body = self._body(request) | {"stream": True}
        try:
            async with self._client.stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    retry_after = response.headers.get("retry-after")
                    raise _classify(response.status_code, response.text, retry_after, self.retry_after_cap)
                async for line in response.aiter_lines():
                    text = _event_text(line)
                    if text is None:
                        return
                    if text:
                        yield text
        except httpx2.TransportError as e:
            raise _transport(e) from e


def _event_text(line: str) -> str | None:
    if not line.strip() or line.startswith(":"):
        return ""
    if not line.startswith("data:"):
        raise MemberFailure("garbage", f"not a server-sent event: {line[:200]!r}")
    payload = line[len("data:") :].strip()
    if payload == "[DONE]":
        return None
    try:
        delta = json.loads(payload)["choices"][0].get("delta") or {}
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
        has_metrics: ``False`` once the member proved to expose no vLLM metrics (llama.cpp).
        cooling_until: ``time.monotonic()`` before which it asked (429 + Retry-After) not to be sent work.
        served_models: Model names from ``/v1/models``; ``None`` until known.
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
    has_metrics: bool | None = None
    cooling_until: float = 0.0
    served_models: frozenset[str] | None = None
    last_error: str = ""

    @property
    def root(self) -> str:
        """The server root (the URL without its ``/v1`` suffix), where ``/metrics`` and ``/health`` live."""
        return self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url

    def load(self, stale_after: float) -> float:
        """Requests ahead of a new one: the server's own count when fresh, else this process's count.

        A member that exposes metrics but whose figures are older than ``stale_after`` is treated as
        saturated (``inf``): nobody knows what it is doing.
        """
        if not self.has_metrics:
            return float(self.in_flight)
        if self.metrics is None or time.monotonic() - self.metrics_at > stale_after:
            return math.inf
        reported = self.metrics.running + self.metrics.waiting
        # Our own requests may not show in a poll yet; the larger of the two counts is the safer guess.
        return max(float(self.in_flight), reported)
