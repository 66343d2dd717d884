"""The routing cascade, cheapest stage first: explicit agent -> a user's correction of this very text ->
regex rules -> semantic -> out of scope.

The cascade never guesses: when the semantic confidence (a calibrated probability) is below the
threshold, or the task is far from every agent's examples, the task is out of scope
(``agent=None``), and the caller asks for a clearer task or an explicit agent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from mcphive.errors import ConfigError, UnknownAgent
from mcphive.router.llm_router import LLMRouter
from mcphive.router.semantic import SemanticRouter
from mcphive.settings import RouteRule
from mcphive.types import Route

__all__ = ["RoutingCascade"]


class RoutingCascade:
    """Decides which agent gets a task, and how sure it is."""

    def __init__(
        self,
        agents: Sequence[str],
        rules: Mapping[str, Sequence[str]],
        semantic: SemanticRouter,
        *,
        threshold: float,
        extra_rules: Sequence[RouteRule] = (),
        llm: LLMRouter | None = None,
        llm_below: float = 0.6,
        corrections: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.agents = tuple(agents)
        for rule in extra_rules:
            if rule.agent not in self.agents:
                raise ConfigError(
                    f"the routing rule {rule.pattern!r} sends tasks to unknown agent {rule.agent!r}; "
                    f"choose one of: {', '.join(self.agents)} (fix [[rules]] in mcphive.toml)"
                )
        compiled: list[tuple[re.Pattern[str], str]] = [(re.compile(r.pattern, re.I), r.agent) for r in extra_rules]
        compiled += [(re.compile(pattern), agent) for agent, patterns in rules.items() for pattern in patterns]
        self._rules = compiled
        self._semantic = semantic
        self.threshold = threshold
        self._llm = llm
        self._llm_below = llm_below
        self._corrected: dict[str, str] = {}
        for text, agent in corrections:
            self.learn(text, agent)

    def learn(self, text: str, agent: str) -> None:
        """Route ``text`` (up to case, spacing and a final full stop) to ``agent`` from now on, before any rule.

        A user's correction is about this task: a keyword rule that sent it elsewhere must not win again.
        Similar texts learn from the correction through the semantic stage's examples.
        """
        if agent in self.agents:
            self._corrected[_normal(text)] = agent

    def corrected(self, text: str) -> str | None:
        """The agent a user corrected ``text`` to, if any (the planner leaves such a request whole)."""
        return self._corrected.get(_normal(text))

    def _by_rules(self, text: str) -> set[str]:
        return {agent for pattern, agent in self._rules if pattern.search(text)}

    async def route(self, text: str, agent: str | None = None) -> Route:
        """Route ``text``; an explicit ``agent`` wins (and must exist)."""
        if agent is not None:
            if agent not in self.agents:
                raise UnknownAgent(agent, self.agents)
            return Route(agent=agent, confidence=1.0, stage="explicit", reason="agent named by the caller")
        corrected = self.corrected(text)
        if corrected is not None:
            return Route(agent=corrected, confidence=1.0, stage="correction", reason="a user corrected this task")
        assessment = await self._semantic.assess(text)
        candidates = assessment.candidates
        if not candidates:
            return Route(agent=None, confidence=0.0, stage="out_of_scope", reason="no agent has example tasks")
        matched = self._by_rules(text)
        if len(matched) == 1:
            (only,) = matched
            runners = [c for c in candidates if c.agent != only][:3]
            return Route(agent=only, confidence=1.0, stage="rule", runners_up=runners, reason="a keyword rule matched")
        if matched:
            # Several rules disagree: let the embeddings decide among the agents the rules named.
            candidates = [c for c in candidates if c.agent in matched] + [
                c for c in candidates if c.agent not in matched
            ]
        best, runners = candidates[0], candidates[1:4]
        if self._llm is not None and not matched and best.score < self._llm_below:
            decided = await self._llm.decide(text, candidates)
            if decided is not None:
                return decided
        if (best.score < self.threshold or not assessment.familiar) and not matched:
            why = (
                f"no agent scored above {self.threshold}"
                if assessment.familiar
                else f"the task is unlike every agent's examples (similarity {assessment.nearest_similarity})"
            )
            return Route(
                agent=None,
                confidence=best.score,
                stage="out_of_scope",
                runners_up=candidates[:3],
                reason=f"{why}; name an agent or describe the task in more detail",
            )
        return Route(
            agent=best.agent,
            confidence=best.score,
            stage="semantic",
            runners_up=runners,
            reason="calibrated match against the agents' example tasks",
        )


def _normal(text: str) -> str:
    return " ".join(text.split()).rstrip(" .").casefold()
