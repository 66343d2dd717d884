"""A backend for any OpenAI-compatible ``/v1/chat/completions`` server: vLLM, ``llama_cpp.server``, ...

``base_url`` follows the OpenAI convention and includes the version prefix
(``http://127.0.0.1:8000/v1``); requests go to ``{base_url}/chat/completions``.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from mcphive.errors import ModelUnavailable
from mcphive.inference._schema import parse_arguments
from mcphive.inference.base import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ModelToolCall,
    tool_names_from_wire,
    wire_tool_name,
)
from mcphive.types import Usage

__all__ = ["OpenAICompatModel"]

logger = logging.getLogger(__name__)

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}
_ids = itertools.count(1)


class OpenAICompatModel:
    """A :class:`~mcphive.inference.base.ChatModel` talking to an OpenAI-compatible HTTP server.

    Args:
        base_url: The server's API root, version prefix included (``http://host:8000/v1``).
        model: The model name the server expects in requests.
        api_key: Sent as a bearer token when given.
        timeout: Seconds to wait for a reply.
        transport: An ``httpx2`` transport (tests, proxies); default: a real connection.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx2.AsyncClient(headers=headers, timeout=timeout, transport=transport)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` with one ``POST /chat/completions``."""
        try:
            response = await self._client.post(f"{self.base_url}/chat/completions", json=self._body(request))
        except httpx2.TransportError as e:
            raise self._unreachable(e) from e
        self._check_status(response.status_code, response.text, response.headers.get("retry-after"))
        try:
            data = response.json()
            return self._response(data, request)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ModelUnavailable(
                f"model server at {self.base_url} sent a reply that is not an OpenAI chat completion ({e}); "
                "check that openai_base_url points at an OpenAI-compatible /v1 root"
            ) from e

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Yield the reply's text from the server's server-sent events (``stream: true``)."""
        body = self._body(request) | {"stream": True}
        try:
            async with self._client.stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._check_status(response.status_code, response.text, response.headers.get("retry-after"))
                async for line in response.aiter_lines():
                    text = _sse_text(line)
                    if text is None:
                        return
                    if text:
                        yield text
        except httpx2.TransportError as e:
            raise self._unreachable(e) from e

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_message(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.tools and request.tool_choice != "none":
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": wire_tool_name(t.name),
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
            body["tool_choice"] = request.tool_choice
            if request.tool_choice == "required" and len(request.tools) == 1:
                # Naming the one tool is the most widely supported way to force a call:
                # llama_cpp.server ignores "required" but honours a named function.
                body["tool_choice"] = {"type": "function", "function": {"name": wire_tool_name(request.tools[0].name)}}
        return body

    def _response(self, data: dict[str, Any], request: ChatRequest | None = None) -> ChatResponse:
        names = tool_names_from_wire(request)
        choice = data["choices"][0]
        raw = choice["message"]
        usage_data = data.get("usage") or {}
        usage = Usage(
            input_tokens=usage_data.get("prompt_tokens", 0),
            output_tokens=usage_data.get("completion_tokens", 0),
            model_calls=1,
        )
        finish: Any = _FINISH.get(choice.get("finish_reason") or "stop", "stop")
        calls: list[ModelToolCall] = []
        for item in raw.get("tool_calls") or []:
            function = item["function"]
            arguments = parse_arguments(function.get("arguments"))
            if arguments is None:
                text = f"malformed arguments for tool {function['name']!r}: {function.get('arguments')}"
                message = ChatMessage(role="assistant", content=text)
                return ChatResponse(message=message, finish_reason="error", usage=usage, model=self.name)
            calls.append(
                ModelToolCall(
                    id=item.get("id") or f"call_{next(_ids)}",
                    name=names.get(function["name"], function["name"]),
                    arguments=arguments,
                )
            )
        if calls:
            finish = "tool_calls"
        message = ChatMessage(role="assistant", content=raw.get("content") or "", tool_calls=calls)
        return ChatResponse(message=message, finish_reason=finish, usage=usage, model=self.name)

    def _unreachable(self, error: httpx2.TransportError) -> ModelUnavailable:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return ModelUnavailable(
            f"model server at {self.base_url} is not answering ({reason}); start it or fix openai_base_url",
            transient=True,
        )

    def _check_status(self, status: int, text: str, retry_after: str | None = None) -> None:
        if status < 400:
            return
        where = f"model server at {self.base_url}"
        detail = f"HTTP {status}: {text[:300]}"
        if status >= 500 or status == 429:
            raise ModelUnavailable(
                f"{where} is not answering properly ({detail}); check its log, restart it or fix openai_base_url",
                transient=True,
                retry_after=_seconds(retry_after),
            )
        if status in (401, 403):
            hint = "set openai_api_key to a key the server accepts"
        elif status == 404:
            hint = f"check openai_base_url (it should end in /v1) and openai_model ({self.model!r})"
        else:
            hint = "the server rejected the request; check openai_model and the server's limits"
        raise ModelUnavailable(f"{where} refused the request ({detail}); {hint}")


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After as seconds (the delta-seconds form; an HTTP date is ignored)."""
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else None
    except ValueError:
        return None


def _message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id or ""
    if message.tool_calls:
        # Kept as "" rather than null or absent: llama_cpp.server and chat templates require a string.
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": wire_tool_name(c.name), "arguments": json.dumps(c.arguments)},
            }
            for c in message.tool_calls
        ]
    return out


def _sse_text(line: str) -> str | None:
    """The text delta of one SSE line: ``""`` for lines without text, ``None`` at ``[DONE]``."""
    if not line.startswith("data:"):
        return ""
    payload = line[len("data:") :].strip()
    if payload == "[DONE]":
        return None
    try:
        delta = json.loads(payload)["choices"][0].get("delta") or {}
    except (ValueError, KeyError, IndexError) as e:
        raise ModelUnavailable(f"model server sent a malformed stream event ({payload[:200]!r})") from e
    return str(delta.get("content") or "")
