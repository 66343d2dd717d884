"""The inference seam: the ChatModel protocol and its backends.

Backends (``local``: llama.cpp + SmolLM2; ``openai``: any OpenAI-compatible server such as vLLM;
``anthropic``) live in their own modules and import their libraries lazily; the composition root
picks one from Settings. ``mcphive.inference.testing`` ships the scripted models for tests.
"""

from mcphive.inference.base import ChatMessage, ChatModel, ChatRequest, ChatResponse, ModelToolCall, ToolSpec

__all__ = ["ChatMessage", "ChatModel", "ChatRequest", "ChatResponse", "ModelToolCall", "ToolSpec"]
