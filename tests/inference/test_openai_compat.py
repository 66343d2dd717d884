"""The OpenAI-compatible backend against a real ``python -m llama_cpp.server`` on loopback.

Replies a real server will not produce on demand (malformed tool arguments, a 503) come from an
``httpx2.MockTransport`` standing in for the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import pytest

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatModel, ChatRequest, ModelToolCall, ToolSpec
from mcphive.inference.openai_compat import OpenAICompatModel

pytestmark = pytest.mark.anyio

FILES = ["README.md", "src/app.py", "setup.cfg"]
READ_FILE = ToolSpec(
    name="read_file",
    description="Read one file of the workspace",
    parameters={"type": "object", "properties": {"path": {"type": "string", "enum": FILES}}, "required": ["path"]},
)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


@pytest.fixture
async def model(llama_server: str) -> AsyncIterator[OpenAICompatModel]:
    model = OpenAICompatModel(llama_server, "smollm2", timeout=60.0)
    yield model
    await model.aclose()


async def test_text_chat_returns_the_servers_answer_and_usage(model: OpenAICompatModel) -> None:
    assert isinstance(model, ChatModel)
    response = await model.chat(ChatRequest(messages=user("Say hello in one short sentence."), max_tokens=24))
    assert response.message.content.strip()
    assert response.finish_reason in ("stop", "length")
    assert response.usage.input_tokens > 0
    assert 0 < response.usage.output_tokens <= 24
    assert response.model == "openai:smollm2"


async def test_required_tool_choice_with_one_tool_forces_a_valid_call(model: OpenAICompatModel) -> None:
    # llama_cpp.server ignores tool_choice="required" but honours a named function, which the
    # backend sends when exactly one tool is offered; its grammar keeps the enum argument valid.
    for prompt in ("Show me the README.", "Tell me a joke."):
        request = ChatRequest(messages=user(prompt), tools=[READ_FILE], tool_choice="required", max_tokens=32)
        response = await model.chat(request)
        assert response.finish_reason == "tool_calls"
        [call] = response.message.tool_calls
        assert call.name == "read_file"
        assert call.arguments["path"] in FILES
        assert call.id


async def test_a_conversation_with_tool_results_is_accepted(model: OpenAICompatModel) -> None:
    messages = [
        *user("Show me the README."),
        ChatMessage(role="assistant", tool_calls=[ModelToolCall(id="c1", name="read_file", arguments={"path": "a"})]),
        ChatMessage(role="tool", tool_call_id="c1", content="# Demo project"),
    ]
    response = await model.chat(ChatRequest(messages=messages, max_tokens=16))
    assert response.finish_reason in ("stop", "length")


async def test_stream_yields_text_chunks_from_server_sent_events(model: OpenAICompatModel) -> None:
    chunks = [c async for c in model.stream(ChatRequest(messages=user("Count from one to ten."), max_tokens=20))]
    assert len(chunks) > 1
    assert "".join(chunks).strip()


async def test_a_dead_url_raises_model_unavailable_saying_what_to_fix(dead_url: str) -> None:
    model = OpenAICompatModel(dead_url)
    try:
        with pytest.raises(ModelUnavailable, match=r"is not answering.*start it or fix openai_base_url") as info:
            await model.chat(ChatRequest(messages=user("hi")))
        assert dead_url in str(info.value)
        with pytest.raises(ModelUnavailable, match="is not answering"):
            _ = [c async for c in model.stream(ChatRequest(messages=user("hi")))]
    finally:
        await model.aclose()


def completion(message: dict[str, object]) -> dict[str, object]:
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }


async def test_malformed_tool_arguments_come_back_as_an_error_reply_with_the_raw_text() -> None:
    raw = '{"path": "README'
    call = {"id": "x", "type": "function", "function": {"name": "read_file", "arguments": raw}}
    transport = httpx2.MockTransport(lambda _: httpx2.Response(200, json=completion({"tool_calls": [call]})))
    model = OpenAICompatModel("http://server.test/v1", transport=transport)
    response = await model.chat(ChatRequest(messages=user("hi"), tools=[READ_FILE]))
    await model.aclose()
    assert response.finish_reason == "error"
    assert response.message.tool_calls == []
    assert raw in response.message.content


async def test_request_maps_tools_tool_choice_and_tool_results_to_the_openai_shape() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        assert request.headers["authorization"] == "Bearer secret"
        return httpx2.Response(200, json=completion({"content": "done"}))

    model = OpenAICompatModel("http://server.test/v1/", "m", api_key="secret", transport=httpx2.MockTransport(handler))
    messages = [
        *user("go"),
        ChatMessage(role="assistant", tool_calls=[ModelToolCall(id="c1", name="read_file", arguments={"path": "a"})]),
        ChatMessage(role="tool", tool_call_id="c1", content="text"),
    ]
    other = ToolSpec(name="run_tests")
    await model.chat(ChatRequest(messages=messages, tools=[READ_FILE, other], tool_choice="required"))
    await model.chat(ChatRequest(messages=messages, tools=[READ_FILE], tool_choice="none"))
    await model.aclose()
    body = seen[0]
    assert body["model"] == "m"
    assert body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in body["tools"]] == ["read_file", "run_tests"]  # type: ignore[attr-defined, index]
    assistant, tool = body["messages"][1], body["messages"][2]  # type: ignore[index]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"path": "a"}
    assert tool == {"role": "tool", "content": "text", "tool_call_id": "c1"}
    assert "tools" not in seen[1]
    assert "tool_choice" not in seen[1]


@pytest.mark.parametrize(
    ("status", "hint"),
    [(503, "not answering properly.*restart it"), (401, "openai_api_key"), (404, "should end in /v1")],
)
async def test_error_statuses_raise_model_unavailable_with_a_hint(status: int, hint: str) -> None:
    transport = httpx2.MockTransport(lambda _: httpx2.Response(status, text="nope"))
    model = OpenAICompatModel("http://server.test/v1", transport=transport)
    with pytest.raises(ModelUnavailable, match=hint):
        await model.chat(ChatRequest(messages=user("hi")))
    await model.aclose()
