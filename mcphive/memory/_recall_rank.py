"""Hybrid ranking of one scope's episodes: BM25 + dense cosine, fused, then recency and importance.

Pure computation over arrays loaded once per scope (see :class:`ScopeIndex`); the store decides
which episodes are in scope and when the index is stale. The final score follows Generative
Agents (Park et al., 2023): relevance, recency and importance are each scaled to [0, 1] and added
with configurable weights. Relevance is reciprocal-rank fusion of three rankings: BM25 over each
episode, BM25 over each episode's window (it and its neighbours in the same thread, because an
episode -- a turn of a conversation, a step of a task -- is often only findable with its
neighbours) and embedding cosine. Hits are then picked greedily with a penalty for every hit
already picked from the same moment of the same thread, so the top ``k`` covers more distinct
moments instead of ten lines of one exchange; that penalty can grow after the first few hits, so
the head follows the score and the tail spreads over moments not yet represented. A moment's own
match (BM25 over its joined episodes, cosine to its mean vector) can reorder the episodes found.
Optionally, episodes whose agent the query names get a relevance bonus (speaker-aware matching:
"what did Caroline paint?").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mcphive.lexical import LexicalIndex

from ._recall_lexical import stemmed_index, windows
from ._recall_models import RecallWeights

if TYPE_CHECKING:
    import numpy.typing as npt

    Floats = npt.NDArray[np.float32] | npt.NDArray[np.float64]
    Ints = npt.NDArray[np.int64]
    Mask = npt.NDArray[np.bool_]

__all__ = ["RankedEpisode", "ScopeIndex"]

_HOUR = 3600.0


@dataclass(frozen=True)
class RankedEpisode:
    """One recalled row of a scope, with the parts of its score."""

    row: int
    score: float
    relevance: float
    recency: float
    importance: float
    lexical_rank: int | None
    dense_rank: int | None


@dataclass
class ScopeIndex:
    """The episodes of one scope as arrays, in thread order, with lazily built BM25 indexes.

    Attributes:
        texts: episode texts (what BM25 indexes).
        vectors: unit embeddings, one row per episode.
        created: creation times as POSIX seconds.
        importance: importance of each episode, 0..1.
        threads: thread of each episode; rows are sorted by thread, then time, then insertion.
        agents: agent of each episode ("" when none).
    """

    texts: Sequence[str]
    vectors: Floats
    created: Floats
    importance: Floats
    threads: Sequence[str]
    agents: Sequence[str]
    _bm25: dict[int, LexicalIndex] = field(default_factory=dict, repr=False)
    _moments: dict[float, Ints] = field(default_factory=dict, repr=False)
    _window_vectors: dict[int, Floats] = field(default_factory=dict, repr=False)
    _moment_index: dict[float, LexicalIndex] = field(default_factory=dict, repr=False)
    _moment_vectors: dict[float, Floats] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        """Number of episodes in the scope."""
        return len(self.texts)

    def lexical(self, span: int = 0) -> LexicalIndex:
        """BM25 over windows of ``span`` neighbours each side (0: single episodes), built on first use."""
        index = self._bm25.get(span)
        if index is None:
            documents = windows(self.texts, self.threads, span) if span else self.texts
            index = self._bm25[span] = stemmed_index(documents)
        return index

    def rank(
        self, query: str, query_vector: Floats, mask: Mask, weights: RecallWeights, *, k: int, now: float
    ) -> list[RankedEpisode]:
        """The ``k`` best episodes among ``mask`` for ``query``, best first.

        Only episodes that one of the rankings placed within ``weights.depth`` (or a neighbour of
        one) can be returned.
        """
        if self.size == 0 or not mask.any():
            return []
        none = np.zeros(self.size, dtype=np.int64)
        lexical_rank = self._lexical_ranks(query, mask, weights.depth, 0) if weights.lexical else none
        window_rank = self._lexical_ranks(query, mask, weights.depth, weights.window_span) if weights.window else none
        dense_rank = self._dense_ranks(query_vector, mask, weights.depth) if weights.dense else none
        moment_rank = self._moment_ranks(query, mask, weights.moment_minutes) if weights.moment else none
        dense_window_rank = (
            self._dense_ranks(query_vector, mask, weights.depth, self.window_vectors(weights.window_span))
            if weights.dense_window
            else none
        )
        fused = (
            _fuse(lexical_rank, weights.lexical, weights.rrf_k)
            + _fuse(window_rank, weights.window, weights.rrf_k)
            + _fuse(dense_rank, weights.dense, weights.rrf_k)
            + _fuse(dense_window_rank, weights.dense_window, weights.rrf_k)
        )
        # A moment's rank only lifts episodes another channel found: it orders matches, it does not add any.
        if weights.moment_dense:
            moment_dense_rank = self._moment_dense_ranks(query_vector, mask, weights.moment_minutes)
            fused = fused + np.where(fused > 0, _fuse(moment_dense_rank, weights.moment_dense, weights.rrf_k), 0.0)
        fused = fused + np.where(fused > 0, _fuse(moment_rank, weights.moment, weights.rrf_k), 0.0)
        fused = self._spread(fused, mask, weights)
        if weights.named_agent:
            fused = fused * (1.0 + weights.named_agent * self._named_agents(query))
        found = mask & (fused > 0)
        relevance = _unit(fused, found)
        recency = _unit(np.power(0.5, np.maximum(now - self.created, 0.0) / (weights.half_life_hours * _HOUR)), found)
        total = weights.relevance * relevance + weights.recency * recency + weights.importance * self.importance
        return [
            RankedEpisode(
                row=row,
                score=float(total[row]),
                relevance=float(relevance[row]),
                recency=float(recency[row]),
                importance=float(self.importance[row]),
                lexical_rank=int(lexical_rank[row]) if lexical_rank[row] > 0 else None,
                dense_rank=int(dense_rank[row]) if dense_rank[row] > 0 else None,
            )
            for row in self._pick(total, found, weights, k)
        ]

    def _named_agents(self, query: str) -> Floats:
        """1.0 for episodes whose agent's name appears as a word of ``query``, else 0.0."""
        words = {word.lower() for word in re.findall(r"\w+", query)}
        named = {agent for agent in set(self.agents) if agent and agent.lower() in words}
        return np.array([agent in named for agent in self.agents], dtype=np.float64)

    def _pick(self, total: Floats, found: Mask, weights: RecallWeights, k: int) -> list[int]:
        """Greedy top ``k`` by score, each pick lowering the rest of its moment's scores.

        Every pick lowers the others of its moment by ``diversity``; from hit number
        ``diversity_head`` on, by ``tail_diversity`` more, so the head of the list follows the
        score and its tail reaches moments not yet represented.
        """
        candidates = np.flatnonzero(found)
        candidates = candidates[np.argsort(-total[candidates], kind="stable")]
        tail = weights.tail_diversity if weights.diversity_head < k else 0.0
        if weights.diversity == 0 and tail == 0:
            return [int(row) for row in candidates[:k]]
        # Far enough down the list, no penalty on the others can lift a candidate into the top k.
        candidates = candidates[: k * 10]
        base = total[candidates].astype(np.float64)
        threads = np.asarray(self.threads, dtype=object)[candidates]
        times = self.created[candidates]
        window = weights.moment_minutes * 60.0
        # How many hits already picked from each candidate's moment.
        seen = np.zeros(len(candidates), dtype=np.float64)
        taken = np.zeros(len(candidates), dtype=bool)
        picked: list[int] = []
        while len(picked) < min(k, len(candidates)):
            penalty = weights.diversity + (tail if len(picked) >= weights.diversity_head else 0.0)
            score = np.where(taken, -np.inf, base - penalty * seen)
            best = int(np.argmax(score))
            picked.append(int(candidates[best]))
            taken[best] = True
            seen += (threads == threads[best]) & (np.abs(times - times[best]) <= window)
        return picked

    def moments(self, minutes: float) -> Ints:
        """The moment of each episode: runs of one thread with gaps of at most ``minutes``, numbered from 0."""
        cached = self._moments.get(minutes)
        if cached is None:
            gap = np.diff(self.created) > minutes * 60.0 if self.size else np.zeros(0, dtype=bool)
            threads = np.asarray(self.threads, dtype=object)
            new = gap | (threads[1:] != threads[:-1]) if self.size else gap
            cached = self._moments[minutes] = np.concatenate([[0], np.cumsum(new)]).astype(np.int64)
        return cached

    def _moment_ranks(self, query: str, mask: Mask, minutes: float) -> Ints:
        """1-based BM25 rank of each episode's moment (all its episodes joined); 0 for unranked."""
        moments = self.moments(minutes)
        index = self._moment_index.get(minutes)
        if index is None:
            documents = [""] * (int(moments[-1]) + 1 if self.size else 0)
            for row, moment in enumerate(moments):
                documents[moment] += " " + self.texts[row]
            index = self._moment_index[minutes] = stemmed_index(documents)
        wanted = set(moments[mask].tolist())
        order = [moment for moment in index.rank(query) if moment in wanted]
        rank_of = np.zeros(int(moments[-1]) + 1 if self.size else 0, dtype=np.int64)
        rank_of[order] = np.arange(1, len(order) + 1)
        return rank_of[moments]

    def _moment_dense_ranks(self, query_vector: Floats, mask: Mask, minutes: float) -> Ints:
        """1-based cosine rank of each episode's moment (the mean of its episodes' vectors); 0 for unranked."""
        moments = self.moments(minutes)
        count = int(moments[-1]) + 1
        sums = self._moment_vectors.get(minutes)
        if sums is None:
            sums = np.zeros((count, self.vectors.shape[1]), dtype=np.float64)
            np.add.at(sums, moments, self.vectors)
            sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
            sums = self._moment_vectors[minutes] = sums.astype(np.float32)
        wanted = np.unique(moments[mask])
        order = wanted[np.argsort(-(sums[wanted] @ query_vector), kind="stable")]
        rank_of = np.zeros(count, dtype=np.int64)
        rank_of[order] = np.arange(1, len(order) + 1)
        return rank_of[moments]

    def _lexical_ranks(self, query: str, mask: Mask, depth: int, span: int) -> Ints:
        """1-based BM25 rank (over episodes, or windows of ``span``) of each masked episode; 0 for unranked."""
        ranks = np.zeros(self.size, dtype=np.int64)
        hits = [row for row in self.lexical(span).rank(query) if mask[row]][:depth]
        ranks[hits] = np.arange(1, len(hits) + 1)
        return ranks

    def window_vectors(self, span: int) -> Floats:
        """Each episode's vector averaged with up to ``span`` neighbours each side in its thread, unit length."""
        cached = self._window_vectors.get(span)
        if cached is None:
            summed = self.vectors.astype(np.float64)
            threads = np.asarray(self.threads, dtype=object)
            for shift in range(1, span + 1):
                same = (threads[shift:] == threads[:-shift])[:, None]
                summed[:-shift] += np.where(same, self.vectors[shift:], 0.0)
                summed[shift:] += np.where(same, self.vectors[:-shift], 0.0)
            norms = np.linalg.norm(summed, axis=1, keepdims=True)
            cached = self._window_vectors[span] = (summed / np.maximum(norms, 1e-12)).astype(np.float32)
        return cached

    def _dense_ranks(self, query_vector: Floats, mask: Mask, depth: int, vectors: Floats | None = None) -> Ints:
        """1-based cosine rank of each masked episode (vectors are unit length); 0 beyond ``depth``."""
        ranks = np.zeros(self.size, dtype=np.int64)
        candidates = np.flatnonzero(mask)
        similarity = (self.vectors if vectors is None else vectors)[candidates] @ query_vector
        best = candidates[np.argsort(-similarity, kind="stable")][:depth]
        ranks[best] = np.arange(1, len(best) + 1)
        return ranks

    def _spread(self, fused: Floats, mask: Mask, weights: RecallWeights) -> Floats:
        """Add a share of each episode's fused score to its neighbours in the same thread."""
        if weights.neighbours == 0 or weights.neighbour_weight == 0:
            return fused
        spread = fused.copy()
        threads = np.asarray(self.threads, dtype=object)
        for shift in range(1, weights.neighbours + 1):
            same = threads[shift:] == threads[:-shift]
            # Row i gets a share of row i+shift (its successor) and of row i-shift (its predecessor).
            spread[:-shift] += weights.neighbour_weight * np.where(same, fused[shift:], 0.0)
            spread[shift:] += weights.neighbour_weight * np.where(same, fused[:-shift], 0.0)
        return np.where(mask, spread, 0.0)


def _fuse(ranks: Ints, weight: float, k: float) -> Floats:
    """Weighted reciprocal-rank contribution of one ranking; 0 where the episode is unranked."""
    return np.where(ranks > 0, weight / (k + ranks), 0.0)


def _unit(values: Floats, where: Mask) -> Floats:
    """Min-max scale ``values`` to [0, 1] over ``where`` (all ones when they are equal); 0 elsewhere."""
    if not where.any():
        return np.zeros_like(values, dtype=np.float64)
    low, high = float(values[where].min()), float(values[where].max())
    scaled = np.ones_like(values, dtype=np.float64) if high <= low else (values - low) / (high - low)
    return np.where(where, scaled, 0.0)
