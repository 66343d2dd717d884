"""The data of the episode store: an episode, the scope a recall searches, a recalled hit, the weights.

No numpy here: importing the public models must stay cheap (the CLI has a start-up budget).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from mcphive.types import utcnow

__all__ = ["Episode", "RecallHit", "RecallScope", "RecallWeights"]


def _new_id() -> str:
    return uuid4().hex


class Episode(BaseModel):
    """Something that happened and may be worth remembering: a turn, a step, an outcome, a note.

    Attributes:
        id: unique id (a fresh UUID by default).
        tenant: who owns the episode; recall never crosses tenants.
        workspace: the project it happened in ("" when none).
        agent: the agent it happened to ("" when none).
        thread: the task or conversation it belongs to ("" when none).
        kind: what sort of episode (``"turn"``, ``"step"``, ``"note"``...).
        text: what happened, in words; credentials are redacted before storing.
        created_at: when it happened (now by default; set it when recording past events).
        importance: how much it matters, 0..1.
        outcome: how it ended (``"succeeded"``, ``"failed"``...; "" when not applicable).
        metadata: anything else, JSON-serialisable (e.g. the speaker of a turn).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=_new_id, min_length=1, max_length=64)
    tenant: str = Field(min_length=1, max_length=128)
    workspace: str = ""
    agent: str = Field("", max_length=64)
    thread: str = Field("", max_length=128)
    kind: str = Field("note", max_length=32)
    text: str = Field(min_length=1)
    created_at: datetime = Field(default_factory=utcnow)
    importance: float = Field(0.5, ge=0.0, le=1.0)
    outcome: str = Field("", max_length=32)
    metadata: dict[str, Any] = Field(default_factory=dict)


class RecallScope(BaseModel):
    """Whose episodes a recall searches: one tenant, optionally narrowed to a workspace, agent or thread.

    Each distinct scope keeps its own cached index, so use a stable scope per caller (e.g. the
    tenant and thread of a conversation) and narrow further with :meth:`recall`'s filters.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(min_length=1, max_length=128)
    workspace: str | None = None
    agent: str | None = None
    thread: str | None = None


class RecallHit(BaseModel):
    """One recalled episode and why it ranked where it did.

    Attributes:
        episode: the stored episode.
        score: the weighted sum of the three parts below; hits are sorted by it.
        relevance: fused lexical + dense relevance, scaled to [0, 1] over the candidates.
        recency: recency, scaled to [0, 1] over the candidates.
        importance: the episode's importance.
        lexical_rank: its BM25 rank among the scope (1 = best), ``None`` when BM25 did not find it.
        dense_rank: its embedding rank (1 = best), ``None`` when beyond the fusion depth.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    episode: Episode
    score: float
    relevance: float
    recency: float
    importance: float
    lexical_rank: int | None = None
    dense_rank: int | None = None


class RecallWeights(BaseModel):
    """How recall scores episodes; the defaults suit an agent's working memory.

    Attributes:
        relevance: weight of the fused lexical + dense relevance.
        recency: weight of recency (exponential decay with ``half_life_hours``).
        importance: weight of the episode's own importance (0..1).
        lexical: weight of the BM25 ranking of single episodes inside the fusion.
        window: weight of the BM25 ranking of episode windows inside the fusion.
        window_span: how many neighbours on each side, in the same thread, a window holds.
        dense: weight of the embedding ranking inside the fusion.
        rrf_k: reciprocal-rank-fusion constant; larger flattens the head of each ranking.
        depth: how many of each ranking's best episodes take part in the fusion.
        half_life_hours: age at which recency falls to one half.
        neighbours: how many episodes before and after a match, in the same thread, share its relevance.
        neighbour_weight: the share of a match's relevance each neighbour receives.
        diversity: score subtracted from a candidate for each hit already picked from its moment.
        moment_minutes: episodes of one thread this close in time are one moment for ``diversity``.
        named_agent: relevance bonus, as a share of the fused score, for episodes whose agent the
            query names ("what did *Caroline* paint?" favours Caroline's own turns).
        dense_window: weight of the embedding ranking of episode windows (each episode's vector
            averaged with its ``window_span`` neighbours') inside the fusion.
        moment: weight of the BM25 ranking of whole moments (a thread's episodes within
            ``moment_minutes`` of each other, joined) inside the fusion; it reorders episodes the
            other rankings found, favouring those from the moments that match the query best.
        diversity_head: how many hits are picked with ``diversity`` alone before ``tail_diversity``
            adds to it.
        tail_diversity: extra score subtracted, from hit number ``diversity_head`` on, for each hit
            already picked from a candidate's moment: the head of the list follows the score, its
            tail reaches moments not yet represented.
        moment_dense: weight of the embedding ranking of whole moments (cosine to the mean of their
            episodes' vectors) inside the fusion; like ``moment``, it reorders what the other
            rankings found.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    relevance: float = Field(1.0, ge=0)
    recency: float = Field(0.2, ge=0)
    importance: float = Field(0.2, ge=0)
    lexical: float = Field(1.0, ge=0)
    window: float = Field(2.0, ge=0)
    window_span: int = Field(1, ge=0)
    dense: float = Field(1.0, ge=0)
    rrf_k: float = Field(60.0, gt=0)
    depth: int = Field(100, ge=1)
    half_life_hours: float = Field(168.0, gt=0)
    neighbours: int = Field(0, ge=0)
    neighbour_weight: float = Field(0.25, ge=0)
    diversity: float = Field(0.05, ge=0)
    moment_minutes: float = Field(60.0, ge=0)
    named_agent: float = Field(0.0, ge=0)
    moment: float = Field(0.0, ge=0)
    dense_window: float = Field(0.0, ge=0)
    diversity_head: int = Field(5, ge=0)
    tail_diversity: float = Field(0.0, ge=0)
    moment_dense: float = Field(0.0, ge=0)
