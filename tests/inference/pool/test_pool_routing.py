"""PoolModel over two real llama.cpp members: routing, retries before the first token, clear errors.

Faults come from a proxy in front of member 0 (429 + Retry-After, 4xx, garbage, a stall, a stream
cut after its first chunk); the server behind it is real.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatModel, ChatRequest
from mcphive.inference.pool import MemberState, PoolLauncher, PoolModel, RouteKey, pool_session

from .fault_proxy import SPLIT_TEXT, SPLIT_USAGE, FaultProxy

pytestmark = pytest.mark.anyio

MODEL = "smollm2"


def ask(text: str, max_tokens: int = 4) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], max_tokens=max_tokens)


class InOrder:
    """Always the first available member in pool order: makes "which member first" deterministic."""

    name = "in_order"

    def choose(self, members: Sequence[MemberState], key: RouteKey) -> MemberState:
        return members[0]


def served(pool: PoolModel) -> list[int]:
    return [m.served for m in pool.members]


async def test_round_robin_spreads_requests_over_both_members(launcher: PoolLauncher) -> None:
    async with PoolModel(launcher.urls, MODEL, policy="round_robin") as pool:
        assert isinstance(pool, ChatModel)
        for i in range(4):
            response = await pool.chat(ask(f"Say hello {i}."))
            assert response.message.content
            assert response.model == "pool:smollm2"
        assert served(pool) == [2, 2]


async def test_session_affinity_keeps_a_session_on_one_member(launcher: PoolLauncher) -> None:
    async with PoolModel(launcher.urls, MODEL, policy="session_affinity") as pool:
        with pool_session("task-1"):
            for _ in range(3):
                await pool.chat(ask("Next step?"))
        assert sorted(served(pool)) == [0, 3]


async def test_a_stream_through_the_pool_yields_text(launcher: PoolLauncher) -> None:
    async with PoolModel(launcher.urls, MODEL) as pool:
        chunks = [c async for c in pool.stream(ask("Count from one to ten.", max_tokens=8))]
        assert len(chunks) > 1
        assert sum(served(pool)) == 1
        assert all(m.in_flight == 0 for m in pool.members)


async def test_a_model_no_member_serves_is_a_clear_error(launcher: PoolLauncher) -> None:
    async with PoolModel(launcher.urls, "no-such-model", queue_timeout=2) as pool:
        with pytest.raises(ModelUnavailable, match=r"no pool member serves model 'no-such-model'.*smollm2"):
            await pool.chat(ask("hello"))


async def test_a_429_is_retried_on_the_other_member_and_the_first_cools_down(
    launcher: PoolLauncher, fault_proxy: FaultProxy
) -> None:
    fault_proxy.inject("429")
    fault_proxy.retry_after = "30"
    async with PoolModel([fault_proxy.url, launcher.urls[1]], MODEL, policy=InOrder()) as pool:
        await pool.chat(ask("hello"))
        await pool.chat(ask("hello again"))
        assert len(fault_proxy.hits) == 1  # the second request skipped the member that asked to wait
        assert served(pool) == [0, 2]
        assert pool.members[0].breaker.state == "closed"  # being busy is not being broken


async def test_retry_after_is_honoured_before_the_same_member_is_tried_again(
    launcher: PoolLauncher, fault_proxy: FaultProxy
) -> None:
    fault_proxy.inject("429")
    fault_proxy.retry_after = "1"
    async with PoolModel([fault_proxy.url], MODEL, queue_timeout=10) as pool:
        response = await pool.chat(ask("hello"))
        assert response.message.content
        first, second = fault_proxy.hits
        assert second - first >= 0.9


@pytest.mark.parametrize("fault", ["503", "garbage", "stall"])
async def test_a_broken_reply_is_retried_elsewhere_and_counts_against_the_member(
    launcher: PoolLauncher, fault_proxy: FaultProxy, fault: str
) -> None:
    fault_proxy.inject(fault)  # type: ignore[arg-type]
    members = [fault_proxy.url, launcher.urls[1]]
    async with PoolModel(members, MODEL, policy=InOrder(), timeout=3, breaker_threshold=3) as pool:
        assert (await pool.chat(ask("hello"))).message.content
        assert served(pool) == [0, 1]
        assert pool.members[0].breaker.failures == 1
        assert fault in pool.members[0].last_error or "timeout" in pool.members[0].last_error


async def test_a_stream_is_retried_elsewhere_when_it_fails_before_the_first_chunk(
    launcher: PoolLauncher, fault_proxy: FaultProxy
) -> None:
    fault_proxy.inject("garbage")
    async with PoolModel([fault_proxy.url, launcher.urls[1]], MODEL, policy=InOrder()) as pool:
        chunks = [c async for c in pool.stream(ask("Say hi.", max_tokens=6))]
        assert "".join(chunks).strip()
        assert served(pool) == [0, 1]


async def test_a_stream_that_fails_after_its_first_chunk_is_never_retried(
    launcher: PoolLauncher, fault_proxy: FaultProxy
) -> None:
    fault_proxy.inject("cut")
    chunks: list[str] = []
    async with PoolModel([fault_proxy.url, launcher.urls[1]], MODEL, policy=InOrder()) as pool:
        with pytest.raises(ModelUnavailable, match="middle of a streamed reply"):
            async for chunk in pool.stream(ask("Say hi.", max_tokens=6)):
                chunks.append(chunk)
        assert chunks == ["Hello"]
        assert served(pool) == [0, 0]
        assert all(m.in_flight == 0 for m in pool.members)


async def test_a_stream_cut_at_any_byte_keeps_its_text_and_its_usage(
    launcher: PoolLauncher, fault_proxy: FaultProxy
) -> None:
    fault_proxy.inject("split")
    async with PoolModel([fault_proxy.url], MODEL) as pool:
        chunks = [c async for c in pool.stream(ask("Say hello."))]
        member = pool.members[0]
        assert "".join(chunks) == SPLIT_TEXT
        usage = (member.usage.input_tokens, member.usage.output_tokens)
        assert usage == (SPLIT_USAGE["prompt_tokens"], SPLIT_USAGE["completion_tokens"])
        assert (member.served, member.in_flight) == (1, 0)


async def test_a_bad_request_is_not_retried_and_does_not_trip_the_breaker(
    launcher: PoolLauncher, fault_proxy: FaultProxy
) -> None:
    fault_proxy.inject("400")
    async with PoolModel([fault_proxy.url, launcher.urls[1]], MODEL, policy=InOrder(), breaker_threshold=1) as pool:
        with pytest.raises(ModelUnavailable, match=r"refused the request.*HTTP 400"):
            await pool.chat(ask("hello"))
        assert pool.members[0].breaker.state == "closed"
        assert served(pool) == [0, 0]
        assert (await pool.chat(ask("hello"))).message.content  # the member still takes requests
        assert served(pool) == [1, 0]


async def test_members_report_no_vllm_metrics_so_in_flight_counts_rule(launcher: PoolLauncher) -> None:
    async with PoolModel(launcher.urls, MODEL) as pool:
        assert [m.has_metrics for m in pool.members] == [False, False]
        assert [m.served_models for m in pool.members] == [frozenset({MODEL})] * 2


async def test_a_request_marked_hard_goes_to_the_fallback_and_others_stay_on_the_members(
    launcher: PoolLauncher,
) -> None:
    from mcphive.inference.testing import FunctionModel

    stronger = FunctionModel(lambda request: "answered by the stronger model")
    async with PoolModel(launcher.urls, MODEL, fallback=stronger) as pool:
        hard = await pool.chat(ChatRequest(messages=[ChatMessage(role="user", content="prove it")], hard=True))
        chunks = [
            c async for c in pool.stream(ChatRequest(messages=[ChatMessage(role="user", content="x")], hard=True))
        ]
        assert sum(int(m["served"]) for m in pool.status()) == 0
        easy = await pool.chat(ChatRequest(messages=[ChatMessage(role="user", content="say hi")], max_tokens=4))
        served = sum(int(m["served"]) for m in pool.status())
    assert hard.message.content == "answered by the stronger model" and "".join(chunks)
    assert pool.spill.requests == 2
    assert served == 1 and easy.model == pool.name
