"""Failover with real llama.cpp members: one is killed mid-run, its breaker opens, it restarts and rejoins."""

from __future__ import annotations

import socket

import anyio
import anyio.to_thread
import pytest

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatRequest
from mcphive.inference.pool import PoolLauncher, PoolModel
from mcphive.inference.testing import ScriptedModel

pytestmark = pytest.mark.anyio

MODEL = "smollm2"


def ask(text: str) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], max_tokens=4)


def dead_urls(count: int) -> list[str]:
    urls = []
    for _ in range(count):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            urls.append(f"http://127.0.0.1:{sock.getsockname()[1]}/v1")
    return urls


async def wait_for(condition: object, seconds: float = 30.0) -> None:
    with anyio.fail_after(seconds):
        # The monitor changes member states in the background and signals nothing a test could await.
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def test_a_killed_member_fails_over_opens_its_breaker_and_rejoins_after_restart(launcher: PoolLauncher) -> None:
    pool = PoolModel(
        launcher.urls,
        MODEL,
        policy="round_robin",
        poll_interval=0.1,
        health_interval=0.2,
        breaker_threshold=2,
        breaker_cooldown=0.5,
    )
    async with pool:
        victim, survivor = pool.members
        async with anyio.create_task_group() as group:
            results: list[str] = []

            async def one(i: int) -> None:
                results.append((await pool.chat(ask(f"Say hello {i}."))).message.content)

            for i in range(6):
                group.start_soon(one, i)
            await wait_for(lambda: victim.in_flight > 0)
            await anyio.to_thread.run_sync(launcher.kill, 0)
        # Every request either finished on the victim before it died or was retried on the survivor.
        assert len(results) == 6
        assert all(results)
        assert victim.failed >= 1  # at least one request was cut off by the kill and retried on the survivor
        assert victim.served + survivor.served == 6
        await wait_for(lambda: victim.breaker.state != "closed")
        before = victim.served
        for i in range(3):
            await pool.chat(ask(f"Again {i}."))
        assert victim.served == before  # a member whose breaker is open gets no requests

        await anyio.to_thread.run_sync(launcher.restart, 0)
        await wait_for(lambda: victim.breaker.state == "closed")
        for i in range(4):
            await pool.chat(ask(f"Back {i}."))
        assert victim.served >= before + 2
        assert survivor.breaker.state == "closed"


async def test_all_members_down_is_a_clear_model_unavailable() -> None:
    async with PoolModel(dead_urls(2), MODEL, queue_timeout=1, breaker_threshold=1) as pool:
        with pytest.raises(ModelUnavailable, match=r"no pool member could answer.*within 1 s.*configure a fallback"):
            await pool.chat(ask("hello"))
        assert {m.breaker.state for m in pool.members} <= {"open", "half_open"}


async def test_all_members_down_with_a_fallback_answers_from_the_fallback_at_once() -> None:
    fallback = ScriptedModel(["from the fallback", "streamed fallback"])
    async with PoolModel(dead_urls(2), MODEL, fallback=fallback, queue_timeout=60, breaker_threshold=1) as pool:
        with anyio.fail_after(30):  # far below queue_timeout: the pool did not wait for dead members
            response = await pool.chat(ask("hello"))
            chunks = [c async for c in pool.stream(ask("hello"))]
        assert response.message.content == "from the fallback"
        assert "".join(chunks).strip() == "streamed fallback"
