"""The semantic stage: a calibrated classifier over MiniLM embeddings of each agent's example tasks.

Each agent's score is a calibrated probability (the scores of all agents sum to 1): a logistic
regression over the examples' embeddings blended with the mean similarity of each agent's ``k``
nearest examples and with a logistic regression over the examples' words (TF-IDF), divided by a
temperature fitted on held-out examples (see :mod:`mcphive.router._calibrate`). "0.8" therefore
means "right about 80% of the time", so the cascade's threshold is a real probability. Measured in
``benchmarks/routing_accuracy.py``.

A probability says which agent is likeliest, not whether the task is any agent's business at all:
a recipe question still sums to 1 over the agents. :meth:`SemanticRouter.assess` adds the
similarity to the single nearest example, and a task far from every example is unfamiliar. The
default ``min_similarity`` of 0.3 is about the 5th percentile of that similarity for real change
descriptions (the domain set's dev split), while half of CLINC150's everyday requests fall below 0.23.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from mcphive.errors import ConfigError
from mcphive.types import Candidate

if TYPE_CHECKING:
    from mcphive.embeddings import Embedder
    from mcphive.router._calibrate import CalibratedHead

__all__ = ["Assessment", "SemanticRouter"]


@dataclass(frozen=True)
class Assessment:
    """The semantic stage's view of one text.

    Attributes:
        candidates: every agent with its calibrated probability, best first.
        nearest_similarity: cosine similarity to the closest example of any agent.
        familiar: whether ``nearest_similarity`` reaches the router's ``min_similarity``.
    """

    candidates: list[Candidate]
    nearest_similarity: float
    familiar: bool


class SemanticRouter:
    """Calibrated scoring of a text against labelled example tasks.

    Args:
        examples: example tasks per agent; agents without examples are never proposed.
        embedder: the MiniLM embedder.
        k: neighbours averaged per agent by the kNN part of the head.
        method: the head, ``"blend"`` (default), ``"logreg"``, ``"knn"`` or ``"centroid"``.
        min_similarity: below this similarity to the nearest example a text is unfamiliar.
        lexical: weight of the word-level (TF-IDF) regression in the blend; 0 turns it off.

    Raises:
        ConfigError: ``method`` is not one of the four heads.
    """

    def __init__(
        self,
        examples: Mapping[str, Sequence[str]],
        embedder: Embedder,
        *,
        k: int = 3,
        method: str = "blend",
        min_similarity: float = 0.3,
        lexical: float = 1.0,
    ) -> None:
        if method not in ("blend", "logreg", "knn", "centroid"):
            raise ConfigError(f"unknown semantic router method {method!r}; use one of: blend, logreg, knn, centroid")
        self._examples = {agent: list(texts) for agent, texts in examples.items() if texts}
        self._embedder = embedder
        self._k = k
        self._method = method
        self.min_similarity = min_similarity
        self._lexical = lexical if method == "blend" else 0.0
        self._agents: list[str] = []
        self._head: CalibratedHead | None = None
        self._lock = anyio.Lock()

    async def _fit(self) -> CalibratedHead:
        async with self._lock:
            if self._head is None:
                agents = list(self._examples)
                texts = [text for texts in self._examples.values() for text in texts]
                labels = [i for i, agent in enumerate(agents) for _ in self._examples[agent]]
                matrix = await self._embedder.aembed(texts)
                self._head = await anyio.to_thread.run_sync(self._fit_head, matrix, labels, texts)
                self._agents = agents
            return self._head

    def _fit_head(self, matrix: object, labels: list[int], texts: list[str]) -> CalibratedHead:
        """Fit the head (blocking: L-BFGS on the examples; milliseconds for a few hundred)."""
        import numpy as np

        from mcphive.router._calibrate import CalibratedHead

        x = np.asarray(matrix, dtype=np.float64)
        head = CalibratedHead(method=self._method, k=self._k, lexical=self._lexical)
        return head.fit(x, np.asarray(labels, dtype=np.int64), texts)

    async def add_example(self, agent: str, text: str) -> None:
        """Learn one more example (a correction); used from the next decision on."""
        async with self._lock:
            self._examples.setdefault(agent, []).append(text)
            self._head = None

    async def assess(self, text: str) -> Assessment:
        """Every agent's calibrated probability for ``text``, and how familiar the text looks."""
        import numpy as np

        if not self._examples:
            return Assessment([], 0.0, False)
        head = await self._fit()
        query = np.asarray(await self._embedder.aembed([text]), dtype=np.float64)
        probs = head.predict_proba(query, [text])[0]
        nearest = float(head.nearest_similarity(query)[0])
        candidates = [
            Candidate(agent=agent, score=round(float(p), 4)) for agent, p in zip(self._agents, probs, strict=True)
        ]
        candidates.sort(key=lambda c: c.score, reverse=True)
        return Assessment(candidates, round(nearest, 4), nearest >= self.min_similarity)

    async def scores(self, text: str) -> list[Candidate]:
        """Every agent's calibrated probability for ``text``, best first."""
        return (await self.assess(text)).candidates
