"""The LLM stage of the routing cascade: asked only when the semantic stage is unsure.

The model gets the agents' descriptions and one constrained choice — a ``route`` tool whose
``agent`` argument is an enum of the agents plus ``none`` — so even a small model can only answer
with a valid decision. ``none`` means out of scope: the cascade refuses instead of guessing.
A model that fails or answers nothing leaves the decision to the later stages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from mcphive.errors import MCPHiveError
from mcphive.inference.base import ChatMessage, ChatModel, ChatRequest, ToolSpec
from mcphive.types import Candidate, Route

__all__ = ["LLMRouter"]

log = logging.getLogger(__name__)

NONE = "none"


class LLMRouter:
    """Chooses an agent with a model, constrained to the known agents (or none)."""

    def __init__(self, descriptions: Mapping[str, str], model: Callable[[], ChatModel]) -> None:
        self._descriptions = dict(descriptions)
        self._model = model

    def _request(self, text: str) -> ChatRequest:
        agents = "\n".join(f"- {name}: {about}" for name, about in self._descriptions.items())
        tool = ToolSpec(
            name="route",
            description="Send the task to one agent, or to none when no agent fits.",
            parameters={
                "type": "object",
                "properties": {"agent": {"type": "string", "enum": [*self._descriptions, NONE]}},
                "required": ["agent"],
            },
        )
        system = f"Pick the agent for an engineering task.\nAgents:\n{agents}\nAnswer none when no agent fits."
        messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=text)]
        return ChatRequest(messages=messages, tools=[tool], tool_choice="required", max_tokens=24)

    async def decide(self, text: str, candidates: list[Candidate]) -> Route | None:
        """The model's route, or None when it could not decide (the cascade goes on without it)."""
        try:
            response = await self._model().chat(self._request(text))
        except MCPHiveError as e:
            log.warning("LLM router unavailable, falling back: %s", e)
            return None
        calls = response.message.tool_calls
        choice = calls[0].arguments.get("agent") if calls else None
        if choice == NONE:
            return Route(agent=None, confidence=0.0, stage="out_of_scope", runners_up=candidates[:3],
                         reason="the LLM router found no agent for it; name an agent or rephrase the task")  # fmt: skip
        if choice not in self._descriptions:
            return None
        semantic = next((c.score for c in candidates if c.agent == choice), 0.0)
        runners = [c for c in candidates if c.agent != choice][:3]
        return Route(agent=str(choice), confidence=semantic, stage="llm", runners_up=runners,
                     reason="the semantic stage was unsure; the LLM router chose among the agents")  # fmt: skip
