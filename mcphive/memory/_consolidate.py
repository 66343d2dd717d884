"""Consolidation: old episodes of a scope summarised into compact, recallable notes.

Episodes older than the retention age are taken thread by thread, in time order, in batches;
each batch becomes one episode of kind ``"note"`` whose metadata lists its source episode ids
(``sources``), the time span they cover and the method that wrote it. The sources are kept (they
stay recallable) and point at their note (``consolidated_in``), so they are never summarised twice.

Two summarisers ship: :class:`ModelSummarizer` asks the hive's ChatModel and falls back to
:class:`ExtractiveSummarizer` when the model is unavailable or answers nothing; the extractive one
needs no model and keeps the batch's most central sentences (LexRank-style: TF-IDF cosine
centrality, with near-duplicates skipped), in their original order.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mcphive.errors import ModelUnavailable

from ._recall_lexical import terms
from ._recall_models import Episode

if TYPE_CHECKING:
    import numpy.typing as npt

    from mcphive.inference.base import ChatModel

__all__ = ["ConsolidationReport", "ExtractiveSummarizer", "ModelSummarizer", "Summarizer", "note_for"]

log = logging.getLogger(__name__)

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_REDUNDANT = 0.7
"""Cosine similarity above which a sentence repeats one already picked."""


class Summarizer(Protocol):
    """Turns a batch of episodes (one thread, in time order) into the text of one note."""

    async def summarize(self, episodes: Sequence[Episode]) -> tuple[str, str]:
        """The note's text and the method that wrote it (``"llm"``, ``"extractive"``...)."""
        ...


class ConsolidationReport(BaseModel):
    """What one consolidation run did.

    Attributes:
        notes: the notes written, as stored.
        consolidated: how many episodes the notes summarise.
        methods: notes written per method (``{"llm": 3, "extractive": 1}``).
        skipped: old episodes of batches that got no note (an empty summary, or sources that
            another process consolidated meanwhile); a thread's lone last episode is not counted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    notes: list[Episode] = Field(default_factory=list)
    consolidated: int = 0
    methods: dict[str, int] = Field(default_factory=dict)
    skipped: int = 0


def _sentences(episodes: Sequence[Episode]) -> list[str]:
    found: list[str] = []
    for episode in episodes:
        found.extend(part.strip() for part in _SENTENCE.split(episode.text) if part.strip())
    return found


class ExtractiveSummarizer:
    """The most central sentences of a batch, without a model.

    Each sentence is a TF-IDF vector over stemmed terms; its centrality is its mean cosine
    similarity to the batch's other sentences. Sentences are taken by centrality, skipping any
    too similar to one already taken, until ``max_sentences`` or ``max_chars``, and are returned in
    their original order.

    Args:
        max_sentences: at most this many sentences per note.
        max_chars: at most this many characters per note (a single longer sentence is cut).
    """

    method = "extractive"

    def __init__(self, *, max_sentences: int = 4, max_chars: int = 700) -> None:
        self.max_sentences = max_sentences
        self.max_chars = max_chars

    async def summarize(self, episodes: Sequence[Episode]) -> tuple[str, str]:
        """See :meth:`summarize_sync`; pure computation on a small batch."""
        return self.summarize_sync(episodes), self.method

    def summarize_sync(self, episodes: Sequence[Episode]) -> str:
        """The note's text for ``episodes``."""
        sentences = _sentences(episodes)
        if not sentences:
            return ""
        picked = [sentences[row] for row in sorted(self._pick(sentences))]
        text = " ".join(picked)
        return text if len(text) <= self.max_chars else text[: self.max_chars - 1].rstrip() + "…"

    def _pick(self, sentences: list[str]) -> list[int]:
        vectors = _tfidf([terms(sentence) for sentence in sentences])
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, 0.0)
        centrality = similarity.sum(axis=1) / max(len(sentences) - 1, 1)
        picked: list[int] = []
        length = 0
        for row in np.argsort(-centrality, kind="stable"):
            if len(picked) >= self.max_sentences:
                break
            if picked and float(similarity[row, picked].max()) > _REDUNDANT:
                continue
            if picked and length + len(sentences[row]) + 1 > self.max_chars:
                continue
            picked.append(int(row))
            length += len(sentences[row]) + 1
        return picked


def _tfidf(documents: list[list[str]]) -> npt.NDArray[np.float64]:
    """Unit TF-IDF rows (log-scaled term frequency, smoothed idf) of tokenised ``documents``."""
    vocabulary = {term: column for column, term in enumerate(sorted({t for doc in documents for t in doc}))}
    frequency = Counter(term for doc in documents for term in set(doc))
    vectors = np.zeros((len(documents), len(vocabulary)), dtype=np.float64)
    for row, doc in enumerate(documents):
        for term, count in Counter(doc).items():
            idf = math.log((1 + len(documents)) / (1 + frequency[term])) + 1.0
            vectors[row, vocabulary[term]] = (1.0 + math.log(count)) * idf
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: npt.NDArray[np.float64] = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return unit


_SYSTEM = (
    "You condense an agent's memories into one short note. Keep who did what, decisions, outcomes, "
    "names, numbers and dates; drop greetings and filler. Answer with the note only, at most {words} words."
)


class ModelSummarizer:
    """Summaries written by a ChatModel, with the extractive summary when the model cannot answer.

    Args:
        model: the hive's model (``hive.model``) or any other ChatModel.
        max_tokens: the reply budget of one note.
        fallback: what summarises when the model is unavailable or replies with nothing.
    """

    method = "llm"

    def __init__(
        self, model: ChatModel, *, max_tokens: int = 200, fallback: ExtractiveSummarizer | None = None
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.fallback = fallback or ExtractiveSummarizer()

    async def summarize(self, episodes: Sequence[Episode]) -> tuple[str, str]:
        """The model's note for ``episodes``, or the extractive one when the model fails."""
        from mcphive.inference.base import ChatMessage, ChatRequest

        lines = "\n".join(f"[{e.created_at:%Y-%m-%d %H:%M}] {e.text}" for e in episodes)
        words = max(self.max_tokens * 3 // 4, 20)
        request = ChatRequest(
            messages=[
                ChatMessage(role="system", content=_SYSTEM.format(words=words)),
                ChatMessage(role="user", content=f"Memories, oldest first:\n{lines}\n\nThe note:"),
            ],
            tool_choice="none",
            max_tokens=self.max_tokens,
        )
        try:
            response = await self.model.chat(request)
        except ModelUnavailable as e:
            log.warning("consolidating without the model, which is unavailable: %s", e)
            return await self.fallback.summarize(episodes)
        text = response.message.content.strip()
        if not text:
            return await self.fallback.summarize(episodes)
        return text, self.method


def note_for(batch: Sequence[Episode], text: str, method: str) -> Episode:
    """The note episode summarising ``batch`` (one thread's episodes, oldest first)."""
    first, last = batch[0], batch[-1]

    def shared(name: str) -> str:
        values = {getattr(e, name) for e in batch}
        return values.pop() if len(values) == 1 else ""

    return Episode(
        tenant=first.tenant,
        workspace=shared("workspace"),
        agent=shared("agent"),
        thread=first.thread,
        kind="note",
        text=text,
        # The note stands at the end of what it covers, so time filters and recency treat it so.
        created_at=last.created_at,
        importance=max(e.importance for e in batch),
        metadata={
            "sources": [e.id for e in batch],
            "method": method,
            "from": first.created_at.isoformat(),
            "until": last.created_at.isoformat(),
        },
    )
