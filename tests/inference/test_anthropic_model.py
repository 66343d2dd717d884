"""The Anthropic backend's mapping to and from the Messages API, over an httpx2 mock transport.

Real remote calls are not allowed in tests, so the transport answers with canned Messages API JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from mcphive.errors import ModelUnavailable
from mcphive.inference.anthropic import DEFAULT_ANTHROPIC_MODEL, AnthropicModel
from mcphive.inference.base import ChatMessage, ChatModel, ChatRequest, ModelToolCall, ToolSpec

pytestmark = pytest.mark.anyio

READ_FILE = ToolSpec(
    name="read_file",
    description="Read one file",
    parameters={"type": "object", "properties": {"path": {"type": "string", "enum": ["README.md"]}}},
)
TOOL_REPLY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-5-5",
    "content": [
        {"type": "text", "text": "Reading it."},
        {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "README.md"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 7},
}


class Recorder:
    """A mock Messages API endpoint that records request bodies and answers with a fixed reply."""

    def __init__(self, status: int = 200, body: Any = TOOL_REPLY, headers: dict[str, str] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status, self.body, self.headers = status, body, headers or {}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/messages"
        assert "sk-test" in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))
        self.bodies.append(json.loads(request.content))
        if isinstance(self.body, str):
            return httpx2.Response(self.status, text=self.body, headers=self.headers)
        return httpx2.Response(self.status, json=self.body, headers=self.headers)


def make_model(handler: Callable[[httpx2.Request], httpx2.Response]) -> AnthropicModel:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return AnthropicModel("sk-test", http_client=client, max_retries=0)


async def test_request_maps_system_tools_tool_choice_and_tool_results() -> None:
    recorder = Recorder()
    model = make_model(recorder)
    assert isinstance(model, ChatModel)
    messages = [
        ChatMessage(role="system", content="You are the docs agent."),
        ChatMessage(role="user", content="Summarise the README."),
        ChatMessage(
            role="assistant",
            content="Reading.",
            tool_calls=[ModelToolCall(id="toolu_0", name="read_file", arguments={"path": "README.md"})],
        ),
        ChatMessage(role="tool", tool_call_id="toolu_0", name="read_file", content="# Demo"),
        ChatMessage(role="user", content="Now summarise."),
    ]
    await model.chat(ChatRequest(messages=messages, tools=[READ_FILE], tool_choice="required", max_tokens=99))
    await model.chat(ChatRequest(messages=messages[:2], tools=[READ_FILE], tool_choice="none"))
    await model.chat(ChatRequest(messages=messages[1:2], temperature=1.5))
    await model.aclose()

    first, second, third = recorder.bodies
    assert first["system"] == "You are the docs agent."
    assert first["max_tokens"] == 99
    assert first["model"] == DEFAULT_ANTHROPIC_MODEL
    assert first["tools"] == [
        {"name": "read_file", "description": "Read one file", "input_schema": READ_FILE.parameters}
    ]
    assert first["tool_choice"] == {"type": "any"}
    assert first["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Summarise the README."}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_0", "name": "read_file", "input": {"path": "README.md"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_0", "content": "# Demo"},
                {"type": "text", "text": "Now summarise."},
            ],
        },
    ]
    assert second["tool_choice"] == {"type": "none"}
    assert "tools" not in third
    assert "system" not in third
    assert "temperature" not in third


async def test_tool_use_blocks_become_tool_calls_with_usage() -> None:
    model = make_model(Recorder())
    response = await model.chat(ChatRequest(messages=[ChatMessage(role="user", content="hi")], tools=[READ_FILE]))
    await model.aclose()
    assert response.finish_reason == "tool_calls"
    assert response.message.content == "Reading it."
    assert response.message.tool_calls == [
        ModelToolCall(id="toolu_1", name="read_file", arguments={"path": "README.md"})
    ]
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.model_calls) == (12, 7, 1)
    assert response.model == "claude-sonnet-5-5"


async def test_a_text_reply_cut_at_max_tokens_reports_length() -> None:
    reply = TOOL_REPLY | {"content": [{"type": "text", "text": "Partial"}], "stop_reason": "max_tokens"}
    model = make_model(Recorder(body=reply))
    response = await model.chat(ChatRequest(messages=[ChatMessage(role="user", content="hi")]))
    await model.aclose()
    assert response.finish_reason == "length"
    assert response.message.content == "Partial"
    assert response.message.tool_calls == []


def sse(*events: dict[str, Any]) -> str:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


async def test_stream_yields_the_text_deltas() -> None:
    start = TOOL_REPLY | {"content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
    body = sse(
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " world"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    )
    recorder = Recorder(body=body, headers={"content-type": "text/event-stream"})
    model = make_model(recorder)
    chunks = [c async for c in model.stream(ChatRequest(messages=[ChatMessage(role="user", content="hi")]))]
    await model.aclose()
    assert chunks == ["Hello", " world"]
    assert recorder.bodies[0]["stream"] is True


@pytest.mark.parametrize(
    ("status", "error_type", "hint"),
    [
        (401, "authentication_error", "HTTP 401.*set anthropic_api_key"),
        (529, "overloaded_error", "HTTP 529.*overloaded or failing"),
        (404, "not_found_error", "check anthropic_model"),
        (429, "rate_limit_error", "rate limited"),
    ],
)
async def test_api_errors_raise_model_unavailable_with_what_to_do(status: int, error_type: str, hint: str) -> None:
    body = {"type": "error", "error": {"type": error_type, "message": "no"}}
    model = make_model(Recorder(status=status, body=body))
    with pytest.raises(ModelUnavailable, match=hint):
        await model.chat(ChatRequest(messages=[ChatMessage(role="user", content="hi")]))
    await model.aclose()


async def test_a_connection_failure_raises_model_unavailable() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    model = make_model(refuse)
    with pytest.raises(ModelUnavailable, match="cannot reach the Anthropic API"):
        await model.chat(ChatRequest(messages=[ChatMessage(role="user", content="hi")]))
    await model.aclose()


async def test_namespaced_external_tool_names_go_out_api_safe_and_come_back_dotted() -> None:
    external = ToolSpec(name="notes.search_notes", description="Search notes", parameters={"type": "object"})
    reply = TOOL_REPLY | {
        "content": [{"type": "tool_use", "id": "toolu_9", "name": "notes__search_notes", "input": {"q": "x"}}]
    }
    recorder = Recorder(body=reply)
    model = make_model(recorder)
    history = [
        ChatMessage(role="user", content="find it"),
        ChatMessage(
            role="assistant", tool_calls=[ModelToolCall(id="toolu_8", name="notes.search_notes", arguments={})]
        ),
        ChatMessage(role="tool", tool_call_id="toolu_8", name="notes.search_notes", content="nothing"),
    ]
    response = await model.chat(ChatRequest(messages=history, tools=[external, READ_FILE]))
    sent = recorder.bodies[0]
    assert [t["name"] for t in sent["tools"]] == ["notes__search_notes", "read_file"]
    assert sent["messages"][1]["content"][0]["name"] == "notes__search_notes"
    assert response.message.tool_calls == [ModelToolCall(id="toolu_9", name="notes.search_notes", arguments={"q": "x"})]
