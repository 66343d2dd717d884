"""The semantic stage: nearest neighbours over MiniLM embeddings of each agent's example tasks.

An agent's score is the mean cosine similarity of its ``k`` nearest examples to the task; the
winner's score is the confidence. Averaging over a few neighbours (instead of the single nearest)
keeps one lucky example from deciding a route.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import anyio

from mcphive.types import Candidate

if TYPE_CHECKING:
    import numpy as np

    from mcphive.embeddings import Embedder

__all__ = ["SemanticRouter"]


class SemanticRouter:
    """k-nearest-neighbour scoring of a text against labelled examples."""

    def __init__(self, examples: Mapping[str, Sequence[str]], embedder: Embedder, *, k: int = 3) -> None:
        self._examples = {agent: list(texts) for agent, texts in examples.items() if texts}
        self._embedder = embedder
        self._k = k
        self._labels: list[str] = []
        self._matrix: np.ndarray | None = None
        self._lock = anyio.Lock()

    async def _fit(self) -> np.ndarray:
        async with self._lock:
            if self._matrix is None:
                labels = [agent for agent, texts in self._examples.items() for _ in texts]
                texts = [text for texts in self._examples.values() for text in texts]
                self._matrix = await self._embedder.aembed(texts)
                self._labels = labels
            return self._matrix

    async def add_example(self, agent: str, text: str) -> None:
        """Learn one more example (a correction); used from the next decision on."""
        async with self._lock:
            self._examples.setdefault(agent, []).append(text)
            self._matrix = None

    async def scores(self, text: str) -> list[Candidate]:
        """Every agent's score for ``text``, best first."""
        import numpy as np

        matrix = await self._fit()
        query = await self._embedder.aembed([text])
        sims = matrix @ query[0]
        labels = np.asarray(self._labels)
        candidates = []
        for agent in self._examples:
            own = np.sort(sims[labels == agent])[::-1][: self._k]
            candidates.append(Candidate(agent=agent, score=round(float(own.mean()), 4)))
        return sorted(candidates, key=lambda c: c.score, reverse=True)
