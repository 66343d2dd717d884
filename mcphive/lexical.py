"""The one BM25 layer (``bm25s``) the substrates share: tokenizing, an in-memory index, and reciprocal rank fusion.

Local chroma has no lexical search, and MiniLM is weak on rare exact identifiers (``frobnicate_v2``),
so the RAG store ranks chunks with BM25 as well and fuses both rankings; episode recall does the same
with a stemming tokenizer. It sits below both (beside ``embeddings.py``) so neither substrate imports
the other's internals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

__all__ = ["RRF_K", "LexicalIndex", "reciprocal_rank_fusion", "tokenize"]

RRF_K = 60
"""The usual RRF constant: dampens the weight of the very first ranks."""

_WORD = re.compile(r"\w+")
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

# English function words: they match nearly every chunk, and a question is mostly made of them
# ("when am I charged"), so keeping them lets BM25 promote chunks that share only filler words.
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be been before being below between both but by can
    could did do does doing done down during each either few for from further get gets got had has have having he
    her here hers him his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours out over own same she should so some such than that the their theirs them then
    there these they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_MIN_PART = 2
"""Identifier parts shorter than this (the ``e`` of ``E7731``) are noise, not search terms."""


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; identifiers also yield their snake_case and camelCase parts.

    ``parse_HTTPHeader_v2`` gives ``parse_httpheader_v2`` (the exact identifier, which is what makes
    BM25 precise) plus ``parse``, ``http``, ``header`` and ``v2``-style parts.
    """
    tokens: list[str] = []
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered in _STOPWORDS:
            continue
        tokens.append(lowered)
        parts = [p.lower() for piece in word.split("_") for p in _CAMEL.findall(piece)]
        if len(parts) > 1:
            tokens.extend(p for p in parts if len(p) >= _MIN_PART and p not in _STOPWORDS)
    return tokens


class LexicalIndex:
    """BM25 over a fixed list of documents; rebuild it (cheaply) when the documents change.

    Args:
        documents: the texts to index, in the order their ranks refer to.
        tokenizer: how texts become terms (default :func:`tokenize`); queries use the same one.
    """

    def __init__(self, documents: Sequence[str], tokenizer: Callable[[str], list[str]] | None = None) -> None:
        try:
            import bm25s
        except ImportError as e:
            raise ImportError("BM25 search needs bm25s: pip install bm25s") from e
        # bm25s sets its own logger to DEBUG at import, so "Building index from tokens" reached any
        # handler the application had (the CLI's stderr) whatever level it chose; let it inherit instead.
        logging.getLogger("bm25s").setLevel(logging.NOTSET)
        self._tokenize = tokenizer or tokenize
        self.size = len(documents)
        self._retriever: bm25s.BM25 | None = None
        if documents:
            # An empty document would give bm25s a zero-length row; the empty token keeps it indexable.
            corpus = [self._tokenize(doc) or [""] for doc in documents]
            self._retriever = bm25s.BM25()
            self._retriever.index(corpus, show_progress=False)

    def rank(self, query: str, limit: int | None = None) -> list[int]:
        """Indexes of the best-matching documents (all of them when ``limit`` is None), best first.

        Documents sharing no term with the query are left out.
        """
        if self._retriever is None:
            return []
        ids = self._retriever.get_tokens_ids([t for t in self._tokenize(query) if t])
        if not ids:
            return []
        scores = np.asarray(self._retriever.get_scores_from_ids(ids))
        order = np.argsort(-scores, kind="stable")[:limit]
        return [int(i) for i in order if scores[i] > 0]


def reciprocal_rank_fusion(rankings: Iterable[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Fuse rankings of ids: each id scores ``sum(1 / (k + rank))`` over the rankings it appears in (rank from 1)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused
