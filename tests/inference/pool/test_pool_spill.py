"""Spill-over to Anthropic when no pool member can answer: the reply, its tokens and their cost.

The pool's only member is a closed port (a real refused connection); the Anthropic backend answers
through an httpx2 mock transport with canned Messages API JSON, as in its own tests.
"""

from __future__ import annotations

import socket
from collections import Counter

import anyio
import pytest

from mcphive._pool_cli import FRONT_TOKEN_ENV, format_status, pool_status
from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatRequest
from mcphive.inference.pool import PoolModel
from mcphive.inference.pool.front import render_metrics
from mcphive.settings import Settings

from ..test_anthropic_model import TOOL_REPLY, Recorder, make_model, sse
from .test_front import TOKEN, _auth, _policy, serve_front

pytestmark = pytest.mark.anyio

PRICE = (3.0, 15.0)  # USD per million input / output tokens


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def ask(text: str = "hi") -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], max_tokens=16)


async def test_a_spilled_reply_is_accounted_with_its_tokens_and_cost() -> None:
    recorder = Recorder()
    async with PoolModel(
        [closed_port_url()], fallback=make_model(recorder), fallback_price=PRICE, queue_timeout=2
    ) as pool:
        response = await pool.chat(ask())
        await pool.chat(ask("again"))
        spill = pool.spill_status()
        page = render_metrics(pool, Counter())
    assert response.message.tool_calls[0].name == "read_file"
    assert len(recorder.bodies) == 2
    assert spill == {"requests": 2, "input_tokens": 24, "output_tokens": 14, "cost_usd": pytest.approx(0.000282)}
    assert "mcphive_pool_spill_requests_total 2\n" in page
    assert "mcphive_pool_spill_output_tokens_total 14\n" in page
    assert pool.status()[0]["served"] == 0


async def test_a_spilled_stream_counts_the_usage_the_api_reports_at_its_end() -> None:
    start = TOOL_REPLY | {"content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
    body = sse(
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    )
    fallback = make_model(Recorder(body=body, headers={"content-type": "text/event-stream"}))
    async with PoolModel([closed_port_url()], fallback=fallback, fallback_price=PRICE, queue_timeout=2) as pool:
        chunks = [c async for c in pool.stream(ask())]
        spill = pool.spill_status()
    assert chunks == ["Hello"]
    assert spill == {"requests": 1, "input_tokens": 5, "output_tokens": 2, "cost_usd": pytest.approx(45e-6)}


async def test_without_a_price_the_tokens_are_counted_and_the_cost_stays_zero() -> None:
    async with PoolModel([closed_port_url()], fallback=make_model(Recorder()), queue_timeout=2) as pool:
        await pool.chat(ask())
        spill = pool.spill_status()
    assert (spill["input_tokens"], spill["output_tokens"], spill["cost_usd"]) == (12, 7, 0.0)


async def test_pool_status_shows_the_spill_counted_by_a_running_front(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = closed_port_url()
    settings = settings.model_copy(update={"pool_members": [member]})
    fallback = make_model(Recorder())
    pool = PoolModel([member], fallback=fallback, fallback_price=PRICE, queue_timeout=2)
    async with serve_front(pool, _policy()) as client:
        reply = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                                  headers=_auth())  # fmt: skip
        assert reply.status_code == 200, reply.text
        front = str(client.base_url)
        with pytest.raises(ModelUnavailable, match=FRONT_TOKEN_ENV):  # /metrics wants the front's token
            await anyio.to_thread.run_sync(pool_status, settings, front)
        monkeypatch.setenv(FRONT_TOKEN_ENV, TOKEN)
        status = await anyio.to_thread.run_sync(pool_status, settings, front)
    assert status["spill"] == {
        "fallback": fallback.name,
        "price": list(PRICE),
        "source": f"{front.rstrip('/')}/metrics",
        "requests": 1,
        "input_tokens": 12,
        "output_tokens": 7,
        "cost_usd": pytest.approx(141e-6),
    }
    assert [m["url"] for m in status["members"]] == [member]
    assert f"spill: to {fallback.name} ($3 / $15 per million input / output tokens); 1 request(s) spilled" in (
        format_status(status)
    )


def test_pool_status_without_a_front_shows_the_configured_spill(settings: Settings) -> None:
    none = pool_status(settings.model_copy(update={"pool_members": [closed_port_url()]}))
    anthropic = pool_status(
        settings.model_copy(
            update={"pool_members": [closed_port_url()], "pool_fallback": "anthropic", "pool_fallback_price": PRICE}
        )
    )
    assert none["spill"] == {"fallback": None, "price": None, "source": "settings"}
    assert "spill: none" in format_status(none)
    assert anthropic["spill"] == {"fallback": "anthropic", "price": list(PRICE), "source": "settings"}
    assert "spill: to anthropic ($3 / $15 per million" in format_status(anthropic)
    assert "give --front" in format_status(anthropic)
