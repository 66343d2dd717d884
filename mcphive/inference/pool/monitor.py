"""Background upkeep of a pool's members: metrics polling and active health checks."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

import anyio

from mcphive.inference.pool._http import HttpClient, HttpError, HttpTimeout
from mcphive.inference.pool.members import MemberState
from mcphive.inference.pool.metrics import MetricsParseError, load_metrics

__all__ = ["Monitor"]

logger = logging.getLogger(__name__)


class Monitor:
    """Polls each member's ``/metrics`` every ``poll_interval`` and checks its health every ``health_interval``.

    Health is ``GET /health`` (vLLM), or ``GET /v1/models`` where ``/health`` is 404 (llama.cpp);
    ``/v1/models`` also tells which models the member serves. A health success half-open members
    rejoin on; a failure counts against the member's breaker. A timeout while the member is busy
    with our own requests proves nothing (llama.cpp answers ``/v1/models`` only between requests).

    It runs inside the process that relays requests (``pool serve``), so its HTTP is the members' lean
    client too: a vLLM ``/metrics`` page read every half second through ``httpx2`` held the event loop
    for over a millisecond each time, which requests arriving then paid.
    """

    def __init__(
        self,
        members: Sequence[MemberState],
        *,
        poll_interval: float,
        health_interval: float,
        probe_timeout: float,
        on_change: Callable[[], None],
    ) -> None:
        self._members = members
        self._poll_interval = poll_interval
        self._health_interval = health_interval
        self._on_change = on_change
        self._probe_timeout = probe_timeout
        self._clients: dict[str, HttpClient] = {}
        self._health_path: dict[str, str] = {}
        self._checked_at: dict[str, float] = {}

    async def run(self) -> None:
        """Poll forever; cancel to stop."""
        while True:
            await self.poll_once()
            await anyio.sleep(self._poll_interval)

    async def poll_once(self) -> None:
        """One round over every member, concurrently."""
        async with anyio.create_task_group() as group:
            for member in self._members:
                group.start_soon(self._poll, member)
        self._on_change()

    async def aclose(self) -> None:
        """Close the probe connections."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def _get(self, member: MemberState, path: str) -> tuple[int, bytes]:
        """``GET`` ``path`` under the member's server root: the status and the body."""
        client = self._clients.get(member.root)
        if client is None:
            timeout = self._probe_timeout
            client = self._clients[member.root] = HttpClient(member.root, connect_timeout=timeout, read_timeout=timeout)
        async with client.request("GET", path) as response:
            return response.status, await response.read()

    async def _poll(self, member: MemberState) -> None:
        if member.has_metrics is not False and member.breaker.state != "open":
            await self._poll_metrics(member)
        due = time.monotonic() - self._checked_at.get(member.url, 0.0) >= self._health_interval
        if member.breaker.state == "half_open" or (due and member.breaker.state == "closed"):
            self._checked_at[member.url] = time.monotonic()
            await self._check_health(member)

    async def _poll_metrics(self, member: MemberState) -> None:
        ours = member.in_flight
        try:
            status, page = await self._get(member, "/metrics")
        except HttpError:
            return  # the figures go stale, which routing treats as saturated
        if status == 404:
            member.has_metrics = False
            return
        if status != 200:
            return
        try:
            metrics = load_metrics(page.decode("utf-8", "replace"))
        except MetricsParseError as e:
            logger.warning("pool member %s sent an unreadable /metrics page: %s", member.url, e)
            return
        if metrics is None:
            member.has_metrics = False  # a Prometheus page without vLLM figures: in-flight counts only
            return
        member.has_metrics = True
        member.observe(metrics, max(ours, member.in_flight))

    async def _check_health(self, member: MemberState) -> None:
        try:
            healthy = await self._probe(member)
        except HttpTimeout:
            if member.in_flight:
                return
            healthy = False
        except HttpError:
            healthy = False
        if healthy:
            if member.breaker.state != "closed":
                logger.info("pool member %s is healthy again and rejoins", member.url)
            member.breaker.success()
        else:
            member.breaker.failure()
            member.last_error = "health check failed"

    async def _probe(self, member: MemberState) -> bool:
        path = self._health_path.get(member.url, "/health")
        status, body = await self._get(member, path)
        if status == 404 and path == "/health":
            self._health_path[member.url] = path = "/v1/models"
            status, body = await self._get(member, path)
        if status != 200:
            return status < 500 and status != 404
        if path == "/v1/models" or member.served_models is None:
            await self._learn_models(member, body if path == "/v1/models" else None)
        return True

    async def _learn_models(self, member: MemberState, listing: bytes | None) -> None:
        if listing is None:
            _, listing = await self._get(member, member.url.removeprefix(member.root) + "/models")
        try:
            listed = [str(item["id"]) for item in json.loads(listing)["data"]]
        except (ValueError, KeyError, TypeError):
            return
        member.served_models = frozenset(listed)
        member.client.adopt_served_model(listed)
