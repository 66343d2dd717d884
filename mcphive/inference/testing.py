"""Scripted models for tests: the only part of mcphive that is ever faked.

``FunctionModel`` answers with a function of the request; ``ScriptedModel`` replays a fixed list
of replies. Both record every request they saw so a test can assert on what the model was shown.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from mcphive.errors import ModelUnavailable
from mcphive.inference.base import ChatMessage, ChatRequest, ChatResponse, ModelToolCall
from mcphive.types import Usage

__all__ = ["FunctionModel", "ScriptedModel", "final", "tool_call"]

_ids = itertools.count(1)


def tool_call(name: str, **arguments: Any) -> ChatResponse:
    """A reply that calls tool ``name`` with ``arguments``."""
    call = ModelToolCall(id=f"call_{next(_ids)}", name=name, arguments=arguments)
    return ChatResponse(
        message=ChatMessage(role="assistant", tool_calls=[call]),
        finish_reason="tool_calls",
        usage=Usage(input_tokens=10, output_tokens=5, model_calls=1),
        model="scripted",
    )


def final(text: str) -> ChatResponse:
    """A plain text reply (the final answer)."""
    return ChatResponse(
        message=ChatMessage(role="assistant", content=text),
        usage=Usage(input_tokens=10, output_tokens=len(text.split()), model_calls=1),
        model="scripted",
    )


Reply = ChatResponse | str
ReplyFn = Callable[[ChatRequest], Reply | Awaitable[Reply]]


def _as_response(reply: Reply) -> ChatResponse:
    return final(reply) if isinstance(reply, str) else reply


class FunctionModel:
    """A ChatModel whose reply is ``fn(request)`` (sync or async; a ``str`` means a final answer)."""

    def __init__(self, fn: ReplyFn, *, name: str = "function") -> None:
        self._fn = fn
        self.name = name
        self.requests: list[ChatRequest] = []

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        reply = self._fn(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return _as_response(reply)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        response = await self.chat(request)
        for word in response.message.content.split(" "):
            yield word + " "


class ScriptedModel(FunctionModel):
    """A ChatModel that replays ``replies`` in order and fails loudly when they run out."""

    def __init__(self, replies: Iterable[Reply], *, name: str = "scripted") -> None:
        self._replies = list(replies)
        self._next = 0
        super().__init__(self._reply, name=name)

    def _reply(self, request: ChatRequest) -> Reply:
        if self._next >= len(self._replies):
            raise ModelUnavailable(
                f"ScriptedModel ran out of replies after {len(self._replies)}; add more to the script"
            )
        reply = self._replies[self._next]
        self._next += 1
        return reply
