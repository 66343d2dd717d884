"""The Anthropic Messages API backend, over the official ``anthropic`` SDK.

The request is mapped to the Messages API shape: system messages become ``system``, tools become
``input_schema`` tools, and tool results become ``tool_result`` blocks in a user turn. SDK errors
are translated into :class:`~mcphive.errors.ModelUnavailable` with what to fix.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ModelToolCall,
    tool_names_from_wire,
    wire_tool_name,
)
from mcphive.types import Usage

__all__ = ["DEFAULT_ANTHROPIC_MODEL", "AnthropicModel"]

logger = logging.getLogger(__name__)

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-5-5"
"""The newest Sonnet the SDK knows; ``claude-sonnet-4-5`` is deprecated (the SDK warns on every call)."""

_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


class AnthropicModel:
    """A :class:`~mcphive.inference.base.ChatModel` backed by Anthropic's Messages API.

    Args:
        api_key: The Anthropic API key (the environment is not consulted; Settings already did).
        model: The model name, e.g. ``claude-sonnet-5-5``.
        http_client: An ``httpx2.AsyncClient`` to send requests with (tests pass one with a mock transport).
        max_retries: Retries the SDK makes on connection errors, 429 and 5xx before giving up.
    """

    def __init__(
        self,
        api_key: str,
        model: str = DEFAULT_ANTHROPIC_MODEL,
        *,
        http_client: httpx2.AsyncClient | None = None,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        self.name = f"anthropic:{model}"
        self._client = anthropic.AsyncAnthropic(api_key=api_key, http_client=http_client, max_retries=max_retries)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` with one Messages API call."""
        try:
            message = await self._client.messages.create(**self._params(request))
        except anthropic.APIError as e:
            raise self._translate(e) from e
        return self._response(message, request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Yield the reply's text as the API streams it."""
        async for event in self.stream_events(request):
            if isinstance(event, str):
                yield event

    async def stream_events(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        """Yield the reply's text as the API streams it, then the reply's token usage."""
        try:
            async with self._client.messages.stream(**self._params(request)) as events:
                async for text in events.text_stream:
                    yield text
                final = await events.get_final_message()
        except anthropic.APIError as e:
            raise self._translate(e) from e
        yield Usage(input_tokens=final.usage.input_tokens, output_tokens=final.usage.output_tokens, model_calls=1)

    async def aclose(self) -> None:
        """Close the SDK's HTTP client."""
        await self._client.close()

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            # No temperature: the Messages API of anthropic 2.x no longer takes one, so
            # request.temperature is ignored by this backend.
            "messages": _messages(request.messages),
        }
        system = "\n\n".join(m.content for m in request.messages if m.role == "system" and m.content)
        if system:
            params["system"] = system
        if request.tools:
            params["tools"] = [
                {"name": wire_tool_name(t.name), "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
            params["tool_choice"] = _TOOL_CHOICE[request.tool_choice]
        return params

    def _response(self, message: Any, request: ChatRequest | None = None) -> ChatResponse:
        names = tool_names_from_wire(request)
        texts: list[str] = []
        calls: list[ModelToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                calls.append(
                    ModelToolCall(
                        id=block.id, name=names.get(block.name, block.name), arguments=dict(block.input or {})
                    )
                )
        finish: Any = _FINISH.get(message.stop_reason or "end_turn", "stop")
        if calls and finish != "length":
            finish = "tool_calls"
        usage = Usage(input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens, model_calls=1)
        reply = ChatMessage(role="assistant", content="".join(texts), tool_calls=calls)
        return ChatResponse(message=reply, finish_reason=finish, usage=usage, model=message.model or self.name)

    def _translate(self, error: anthropic.APIError) -> ModelUnavailable:
        if isinstance(error, anthropic.APIConnectionError):
            return ModelUnavailable(f"cannot reach the Anthropic API ({error}); check the network, proxy or firewall")
        if not isinstance(error, anthropic.APIStatusError):
            return ModelUnavailable(
                f"the Anthropic API sent an unexpected reply ({error}); retry or use another backend"
            )
        status = error.status_code
        detail = f"HTTP {status}: {error.api_message or error.message}"
        if status in (401, 403):
            hint = "set anthropic_api_key (or ANTHROPIC_API_KEY) to a valid key"
        elif status == 404:
            hint = f"check anthropic_model ({self.model!r})"
        elif status == 429:
            hint = "the account is rate limited; wait, or lower the number of workers"
        elif status >= 500:
            hint = "the API is overloaded or failing; retry later or use another backend"
        else:
            hint = "the API rejected the request; check the model settings and the request size"
        return ModelUnavailable(f"Anthropic API refused the request ({detail}); {hint}")


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Conversation turns as Messages API blocks, merging consecutive turns of the same role."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.content}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": wire_tool_name(call.name), "input": call.arguments}
        for call in message.tool_calls
    )
    return blocks
