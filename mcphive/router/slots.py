"""Per-agent concurrency limits (settings ``agent_limits``): at most N runs of an agent at once.

A limit counts every run of the agent, however it got there: a task submitted for the agent by
name, a task the router sent to it, and a step of a plan. A run takes one of its agent's slots just
before its agent starts and gives it back when the agent stops (finished, failed, cancelled, or
parked for an approval); a run that finds every slot taken waits for one, saying so in a
``waiting`` event, within its task's time limit.

* :class:`LocalSlots` — the in-process queue (``queue = "memory"``): the hive's own workers are the
  only ones, so a count in memory is exact.
* :class:`SqlSlots` — the durable queue: a slot is a row of ``agent_slots`` in the queue's
  database, taken in a transaction that counts the agent's live slots first, so workers on any
  host share one limit. A slot lives as long as the lease of the queued task it runs under (the
  task itself, or the plan a step belongs to): a worker that dies holding slots frees them when
  its leases expire, and the run taken over by another worker takes its own slot again.

The durable queue also skips, at claim time, tasks submitted for an agent that is at its limit
(:meth:`mcphive.router._queue_sync.SyncDurableQueue.claim_many`), so they do not hold a worker while
they wait. A routed task's agent is known only once it has been routed, after the claim; it waits
for its slot holding its worker.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import anyio
from sqlalchemy import Engine, delete, func, insert, select, text

from mcphive.agents.loop import Emit
from mcphive.errors import StoreError
from mcphive.memory._engine import core_transaction, run_blocking, writer
from mcphive.router._queue_statements import AGENT_SLOTS, live_slots

__all__ = ["AgentSlots", "LocalSlots", "SqlSlots"]

log = logging.getLogger(__name__)

_S = AGENT_SLOTS.c
_PG_SLOT_LOCK = 0x6D71736C00000000
"""Base of the advisory lock keys of the agents' slot counts (one key per agent)."""


class AgentSlots(Protocol):
    """Where runs take and give back their agent's slots."""

    def hold(self, agent: str, holder: str, owner: str, emit: Emit) -> AbstractAsyncContextManager[None]:
        """An async context manager that holds one of ``agent``'s slots for run ``holder``.

        ``owner`` is the id of the queued task the run belongs to (``holder`` itself, or the plan of
        a step). An agent without a limit needs no slot.
        """
        ...


class _Slots:
    """Waiting for and releasing slots; subclasses take and give back one."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self._released = anyio.Event()

    @asynccontextmanager
    async def hold(self, agent: str, holder: str, owner: str, emit: Emit) -> AsyncIterator[None]:
        limit = self.limits.get(agent)
        if limit is None:
            yield
            return
        waiting = False
        while not await self._take(agent, holder, owner, limit):
            if not waiting:
                waiting = True
                await emit("waiting", {"agent": agent, "limit": limit})
            await self._wait()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self._give(holder)
                except StoreError as e:  # the run's own outcome matters more; the slot dies with its lease
                    log.warning("could not give back the %s slot of %s: %s", agent, holder, e)
                self._released.set()
                self._released = anyio.Event()

    async def _wait(self) -> None:
        await self._released.wait()

    async def _take(self, agent: str, holder: str, owner: str, limit: int) -> bool:
        raise NotImplementedError

    async def _give(self, holder: str) -> None:
        raise NotImplementedError


class LocalSlots(_Slots):
    """Slots counted in this process: for the in-process queue, whose workers are all here."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        super().__init__(limits)
        self._holders: dict[str, str] = {}  # holder -> agent

    async def _take(self, agent: str, holder: str, owner: str, limit: int) -> bool:
        running = sum(1 for held in self._holders.values() if held == agent)
        if self._holders.get(holder) != agent and running >= limit:
            return False
        self._holders[holder] = agent
        return True

    async def _give(self, holder: str) -> None:
        self._holders.pop(holder, None)


class SqlSlots(_Slots):
    """Slots as rows in the durable queue's database, shared by every worker of that queue.

    Args:
        engine: the queue's database (migrated: it has ``agent_slots`` and ``task_queue``).
        limits: most runs at once per agent name.
        poll_s: how often a waiting run looks again (a slot given back in this process wakes it at once).
    """

    def __init__(self, engine: Engine, limits: Mapping[str, int], *, poll_s: float = 0.5) -> None:
        super().__init__(limits)
        self._engine = engine
        self._writer = writer(engine)
        self._postgres = engine.dialect.name == "postgresql"
        self._poll_s = poll_s

    async def _wait(self) -> None:
        with anyio.move_on_after(self._poll_s):
            await super()._wait()

    async def running(self, agent: str) -> int:
        """How many live runs hold one of ``agent``'s slots now."""

        def count() -> int:
            live = live_slots(time.time()).where(_S.agent == agent).subquery()
            with core_transaction(self._engine, "count agent slots") as session:
                return int(session.execute(select(func.count()).select_from(live)).scalar_one())

        return await run_blocking(self._engine, count)

    async def _take(self, agent: str, holder: str, owner: str, limit: int) -> bool:
        return await run_blocking(self._engine, lambda: self._take_now(agent, holder, owner, limit))

    def _take_now(self, agent: str, holder: str, owner: str, limit: int) -> bool:
        now = time.time()
        with core_transaction(self._writer, "take an agent slot") as session:
            if self._postgres:  # SQLite's BEGIN IMMEDIATE already keeps other writers out until commit
                key = _PG_SLOT_LOCK + zlib.crc32(agent.encode())
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            holders = {row.holder for row in session.execute(live_slots(now).where(_S.agent == agent))}
            if holder not in holders and len(holders) >= limit:
                return False
            # Rows of runs whose task is no longer claimed under a live lease count for nothing: drop them
            # (the agent's rows outside the live set just read, under the same lock), and this run's own.
            dead = (_S.agent == agent) & _S.holder.not_in(list(holders))
            session.execute(delete(AGENT_SLOTS).where((_S.holder == holder) | dead))
            session.execute(insert(AGENT_SLOTS).values(holder=holder, agent=agent, owner=owner, taken_at=now))
            return True

    async def _give(self, holder: str) -> None:
        def give() -> None:
            with core_transaction(self._writer, "give back an agent slot") as session:
                session.execute(delete(AGENT_SLOTS).where(_S.holder == holder))

        await run_blocking(self._engine, give)
