"""The ChatModel seam: one protocol every backend implements, and the request/response types.

Tool calling is part of the protocol. A request carries the tools the caller allows, each
with a JSON schema for its arguments; the agent loop narrows those schemas (enums of real
files, ``maxLength`` on strings) before sending them, so a backend that supports constrained
decoding (the embedded llama.cpp model) can only emit valid calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from mcphive.types import Usage

__all__ = [
    "ChatMessage",
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "ModelToolCall",
    "ToolSpec",
    "tool_names_from_wire",
    "wire_tool_name",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelToolCall(_Model):
    """A tool call the model asked for."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(_Model):
    """One message of a conversation, OpenAI-style roles."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ModelToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class ToolSpec(_Model):
    """A tool offered to the model: name, description and the JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ChatRequest(_Model):
    """What the caller asks of a model.

    ``tool_choice="required"`` means the reply must be a tool call; ``"auto"`` lets the model
    answer in text instead; ``"none"`` forbids tool calls.
    """

    messages: list[ChatMessage]
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: Literal["auto", "required", "none"] = "auto"
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    hard: bool = False
    """Marked hard by the caller: a pool with a fallback (a stronger hosted model) sends it there directly."""


class ChatResponse(_Model):
    """The model's reply: text, tool calls, or both."""

    message: ChatMessage
    finish_reason: Literal["stop", "length", "tool_calls", "error"] = "stop"
    usage: Usage = Field(default_factory=Usage)
    model: str = ""


@runtime_checkable
class ChatModel(Protocol):
    """Anything that can answer a :class:`ChatRequest`.

    Implementations raise :class:`mcphive.errors.ModelUnavailable` when they cannot reach or
    load their model, with a message that says what to install, start or configure.
    """

    name: str

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer one request."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Yield the reply's text as it is produced."""
        ...


def wire_tool_name(name: str) -> str:
    """A tool's name as hosted APIs accept it (``[A-Za-z0-9_-]``): ``server.tool`` goes out as ``server__tool``.

    External MCP servers' tools are namespaced with a dot, which the OpenAI and Anthropic APIs refuse.
    """
    return name.replace(".", "__")


def tool_names_from_wire(request: ChatRequest | None) -> dict[str, str]:
    """The request's tool names keyed by their wire form, to map a model's tool call back."""
    return {wire_tool_name(t.name): t.name for t in (request.tools if request else [])}
