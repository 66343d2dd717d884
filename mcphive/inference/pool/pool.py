"""``PoolModel``: one ChatModel over several OpenAI-compatible servers (vLLM, ``llama_cpp.server``).

A request goes to the member the routing policy picks among those that may take it (breaker not
open, not cooling after a 429, not saturated, serving the model). Connection errors, timeouts,
429s, 5xx and garbage replies are retried on another member as long as no text has reached the
caller; after the first streamed chunk a failure is raised as it is. When no member can take a
request within ``queue_timeout`` the optional ``fallback`` model answers (its tokens and their cost
are accounted in :attr:`PoolModel.spill`), else ``ModelUnavailable``.

Requests with tools go to each member in the form it supports, learnt by a one-time capability probe:
native tool calls where its server parses them, else a JSON schema that admits only a valid call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import anyio

from mcphive.errors import ConfigError, ModelUnavailable
from mcphive.inference.base import ChatModel, ChatRequest, ChatResponse
from mcphive.inference.pool.members import CircuitBreaker, MemberClient, MemberFailure, MemberState, ToolMode
from mcphive.inference.pool.monitor import Monitor
from mcphive.inference.pool.policies import RouteKey, RoutingPolicy, make_policy, prefix_hashes
from mcphive.types import Usage

__all__ = ["PoolModel", "SpillAccount", "pool_session"]

logger = logging.getLogger(__name__)

_session: ContextVar[str | None] = ContextVar("mcphive_pool_session", default=None)


@contextlib.contextmanager
def pool_session(session_id: str) -> Iterator[None]:
    """Route the requests made inside this block as one session (for ``session_affinity``).

    Without it, a request's session is its first two messages (system prompt and task).
    """
    token = _session.set(session_id)
    try:
        yield
    finally:
        _session.reset(token)


@dataclass
class SpillAccount:
    """What the fallback model answered for the pool: requests, tokens and what they cost.

    Attributes:
        requests: Requests the fallback answered.
        usage: Their tokens; a streamed reply counts where the fallback reports usage (``stream_events``).
        cost_usd: ``usage`` priced at the pool's ``fallback_price``; 0 when no price is set.
        price: USD per million input and output tokens, or ``None``.
    """

    price: tuple[float, float] | None = None
    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    def add(self, usage: Usage) -> None:
        """Count the tokens of one spilled reply (or part of one) and their cost."""
        self.usage += usage
        if self.price is not None:
            self.cost_usd += (usage.input_tokens * self.price[0] + usage.output_tokens * self.price[1]) / 1e6


class PoolModel:
    """A :class:`~mcphive.inference.base.ChatModel` spreading requests over a pool of servers.

    Args:
        members: The members' API roots, version prefix included (``http://host:8000/v1``).
        model: The model name sent to members; members known not to serve it are skipped
            (``"default"`` matches any member).
        policy: ``round_robin``, ``least_loaded``, ``session_affinity``, ``prefix_aware`` or a policy object;
            the default, ``prefix_aware``, measured best on an agent workload (``benchmarks/pool_routing.py``).
        fallback: Answers when no member can, instead of raising ``ModelUnavailable``.
        fallback_price: USD per million input and output tokens of the fallback, for :attr:`spill`'s cost.
        tool_mode: ``auto`` (each member as its capability probe says), ``native`` or ``json_schema`` for all.
        api_key: Bearer token for the members.
        max_in_flight: Requests ahead of a new one at which a member counts as saturated.
        queue_timeout: Seconds a request may wait for a member to become available.
        timeout: Seconds a member may take to connect and between chunks of its reply.
        poll_interval: Seconds between metrics polls; ``stale_after`` old figures mean saturated.
        health_interval: Seconds between health checks of a healthy member.
        breaker_threshold: Consecutive failures that open a member's breaker.
        breaker_cooldown: Seconds before an open breaker lets a probe through.
        max_attempts: Members tried per request; default twice the pool size, plus one.
    """

    def __init__(
        self,
        members: Sequence[str],
        model: str = "default",
        *,
        policy: str | RoutingPolicy = "prefix_aware",
        fallback: ChatModel | None = None,
        fallback_price: tuple[float, float] | None = None,
        tool_mode: Literal["auto"] | ToolMode = "auto",
        api_key: str | None = None,
        max_in_flight: int = 8,
        queue_timeout: float = 30.0,
        timeout: float = 120.0,
        poll_interval: float = 0.5,
        stale_after: float = 5.0,
        health_interval: float = 2.0,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 5.0,
        max_attempts: int | None = None,
    ) -> None:
        if not members:
            raise ConfigError("a model pool needs at least one member URL; set pool_members")
        self.model = model
        self.name = f"pool:{model}"
        self.policy = make_policy(policy) if isinstance(policy, str) else policy
        self.fallback = fallback
        self.spill = SpillAccount(price=fallback_price)
        self.tool_mode = tool_mode
        self.members = [
            MemberState(
                url=url.rstrip("/"),
                client=MemberClient(url, model, api_key=api_key, timeout=timeout),
                breaker=CircuitBreaker(threshold=breaker_threshold, cooldown=breaker_cooldown),
            )
            for url in members
        ]
        self._max_attempts = max_attempts or 2 * len(self.members) + 1
        self._max_in_flight = max_in_flight
        self._queue_timeout = queue_timeout
        self._stale_after = stale_after
        self._changed = anyio.Event()
        self._monitor = Monitor(
            self.members,
            poll_interval=poll_interval,
            health_interval=health_interval,
            probe_timeout=min(timeout, max(1.0, poll_interval * 4)),
            on_change=self._notify,
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PoolModel:
        # One poll before the first request: health, served models and load are then known.
        await self.refresh()
        self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start polling members in the background (also done by the first request)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._monitor.run())

    async def refresh(self) -> None:
        """Poll every member once now (metrics, health, served models)."""
        await self._monitor.poll_once()

    async def probe(self) -> None:
        """Learn what each reachable member supports now (otherwise done at its first request with tools)."""
        async with anyio.create_task_group() as group:
            for member in self.members:
                if member.breaker.state != "open":
                    group.start_soon(self._probe_quietly, member)

    async def _probe_quietly(self, member: MemberState) -> None:
        with contextlib.suppress(MemberFailure):
            member.capabilities = await member.client.probe()

    async def _tool_mode(self, member: MemberState, request: ChatRequest) -> ToolMode:
        """How this request's tools go to ``member``; probes it the first time.

        Raises:
            MemberFailure: the probe could not reach the member.
        """
        if not request.tools or request.tool_choice == "none":
            return "native"
        if self.tool_mode != "auto":
            return self.tool_mode
        if member.capabilities is None:
            member.capabilities = await member.client.probe()
        return member.capabilities.tool_mode

    async def aclose(self) -> None:
        """Stop polling and close every connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._monitor.aclose()
        for member in self.members:
            await member.client.aclose()

    def route_key(self, request: ChatRequest) -> RouteKey:
        """What the policy routes ``request`` on: its session and prompt-prefix hashes."""
        session = _session.get()
        if session is None:
            session = "\x00".join(m.content for m in request.messages[:2])
        return RouteKey(session=session, prefixes=prefix_hashes(request.messages), stale_after=self._stale_after)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` on a member, retrying others on failures that are not the request's fault.

        A request marked ``hard`` goes to the fallback when there is one; so does one no member can take.
        """
        key = self.route_key(request)
        tried: set[MemberState] = set()
        for _attempt in range(0 if request.hard and self.fallback is not None else self._max_attempts):
            if (member := await self._acquire(key, tried)) is None:
                break
            try:
                response = await member.client.chat(request, tool_mode=await self._tool_mode(member, request))
            except MemberFailure as failure:
                self._failed(member, failure)
                tried.add(member)
                continue
            finally:
                self._release(member)
            self._succeeded(member)
            member.usage += response.usage
            return response.model_copy(update={"model": self.name})
        if self.fallback is not None:
            self.spill.requests += 1
            spilled = await self.fallback.chat(request)
            self.spill.add(spilled.usage)
            return spilled
        raise self._unavailable()

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Stream the reply from a member; retries happen only before the first chunk is yielded.

        A request marked ``hard`` streams from the fallback when there is one.
        """
        key = self.route_key(request)
        tried: set[MemberState] = set()
        for _attempt in range(0 if request.hard and self.fallback is not None else self._max_attempts):
            if (member := await self._acquire(key, tried)) is None:
                break
            started = False
            try:
                async with contextlib.aclosing(member.client.stream_events(request)) as events:
                    async for event in events:
                        if isinstance(event, Usage):
                            member.usage += event
                            continue
                        started = True
                        yield event
            except MemberFailure as failure:
                self._failed(member, failure)
                if started:
                    raise ModelUnavailable(
                        f"pool member {member.url} failed in the middle of a streamed reply ({failure}); "
                        "the partial reply cannot be retried, ask again"
                    ) from failure
                tried.add(member)
                continue
            finally:
                self._release(member)
            self._succeeded(member)
            return
        if self.fallback is not None:
            self.spill.requests += 1
            async for chunk in self._spill_stream(self.fallback, request):
                yield chunk
            return
        raise self._unavailable()

    async def _spill_stream(self, fallback: ChatModel, request: ChatRequest) -> AsyncIterator[str]:
        stream_events = getattr(fallback, "stream_events", None)
        if stream_events is None:
            async for chunk in fallback.stream(request):
                yield chunk
            return
        async for event in stream_events(request):
            if isinstance(event, Usage):
                self.spill.add(event)
            else:
                yield str(event)

    def status(self) -> list[dict[str, object]]:
        """Each member's state, for logs and status pages."""
        return [
            {
                "url": m.url,
                "breaker": m.breaker.state,
                "in_flight": m.in_flight,
                "served": m.served,
                "failed": m.failed,
                "load": m.load(self._stale_after),
                "has_metrics": m.has_metrics,
                "input_tokens": m.usage.input_tokens,
                "output_tokens": m.usage.output_tokens,
                "capabilities": None if m.capabilities is None else dataclasses.asdict(m.capabilities),
                "last_error": m.last_error,
            }
            for m in self.members
        ]

    def spill_status(self) -> dict[str, object]:
        """What the fallback answered: requests, tokens and cost in USD."""
        return {
            "requests": self.spill.requests,
            "input_tokens": self.spill.usage.input_tokens,
            "output_tokens": self.spill.usage.output_tokens,
            "cost_usd": self.spill.cost_usd,
        }

    def _available(self, member: MemberState, now: float) -> bool:
        state = member.breaker.state
        if state == "open" or (state == "half_open" and member.in_flight):
            return False  # a half-open member gets one request as its probe
        if member.cooling_until > now or not self._serves(member):
            return False
        return member.load(self._stale_after) < self._max_in_flight

    def _serves(self, member: MemberState) -> bool:
        return self.model == "default" or member.served_models is None or self.model in member.served_models

    async def _acquire(self, key: RouteKey, tried: set[MemberState]) -> MemberState | None:
        """A member for the request, waiting up to ``queue_timeout``; ``None`` when none came free."""
        self.start()
        deadline = time.monotonic() + self._queue_timeout
        while True:
            if all(m.served_models is not None and not self._serves(m) for m in self.members):
                raise self._unavailable()
            now = time.monotonic()
            ready = [m for m in self.members if self._available(m, now)]
            fresh = [m for m in ready if m not in tried]
            if fresh or ready:
                member = self.policy.choose(fresh or ready, key)
                member.in_flight += 1
                return member
            if self.fallback is not None and not self._any_saturated(now):
                return None  # everything is down rather than busy: the fallback answers at once
            if now >= deadline:
                return None
            wake = min(deadline, *(m.cooling_until for m in self.members if m.cooling_until > now), now + 0.25)
            with anyio.move_on_after(max(0.0, wake - now)):
                await self._changed.wait()

    def _any_saturated(self, now: float) -> bool:
        return any(m.breaker.state == "closed" and m.cooling_until <= now and self._serves(m) for m in self.members)

    def _release(self, member: MemberState) -> None:
        member.in_flight -= 1
        self._notify()

    def _succeeded(self, member: MemberState) -> None:
        member.served += 1
        member.breaker.success()

    def _failed(self, member: MemberState, failure: MemberFailure) -> None:
        member.failed += 1
        member.last_error = f"{failure.kind}: {failure}"
        logger.warning("pool member %s failed (%s)", member.url, member.last_error)
        if failure.kind == "rejected":
            raise ModelUnavailable(
                f"pool member {member.url} refused the request ({failure}); "
                f"check the pool's model name ({self.model!r}) and the request's size"
            ) from failure
        if failure.retry_after > 0 or failure.kind == "overloaded":
            member.cooling_until = time.monotonic() + max(failure.retry_after, 0.1)
        if failure.trips_breaker:
            member.breaker.failure()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _unavailable(self) -> ModelUnavailable:
        if all(m.served_models is not None and not self._serves(m) for m in self.members):
            served = sorted({name for m in self.members for name in m.served_models or ()})
            return ModelUnavailable(
                f"no pool member serves model {self.model!r} (they serve: {', '.join(served) or 'nothing'}); "
                "fix the pool's model name or add a member that serves it"
            )
        states = "; ".join(
            f"{m.url}: {m.breaker.state}, in flight {m.in_flight}, last error {m.last_error or 'none'}"
            for m in self.members
        )
        return ModelUnavailable(
            f"no pool member could answer: each one failed, or none came free within {self._queue_timeout:g} s "
            f"({states}); "
            "start or fix the members, raise the pool's queue timeout, or configure a fallback model"
        )
