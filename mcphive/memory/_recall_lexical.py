"""BM25 for episode recall: the RAG tokeniser plus English stemming, over single episodes or windows.

Tokens come from :func:`mcphive.rag.lexical.tokenize` (stopwords dropped, identifiers split);
episodes are conversational, so "painted" must match "paint", and the tokens are also stemmed
with Snowball (PyStemmer) when it is installed. A *window* index concatenates each episode with
its neighbours in the same thread: the answer to "what did you paint?" is the next turn, which
shares no word with the question.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from mcphive.rag.lexical import tokenize

__all__ = ["StemmedBM25", "windows"]

log = logging.getLogger(__name__)


def _load_stemmer() -> Any:
    try:
        import Stemmer
    except ImportError:
        log.info("PyStemmer is not installed; episode recall matches words without stemming (pip install PyStemmer)")
        return None
    return Stemmer.Stemmer("english")


_STEMMER = _load_stemmer()


def _terms(text: str) -> list[str]:
    tokens = tokenize(text)
    return list(_STEMMER.stemWords(tokens)) if _STEMMER is not None else tokens


def windows(texts: Sequence[str], threads: Sequence[str], span: int) -> list[str]:
    """Each text joined with up to ``span`` texts before and after it that share its thread."""
    out = []
    for row, thread in enumerate(threads):
        low, high = max(row - span, 0), min(row + span + 1, len(texts))
        out.append(" ".join(texts[other] for other in range(low, high) if threads[other] == thread))
    return out


class StemmedBM25:
    """BM25 (``bm25s``) over a fixed list of documents.

    Args:
        documents: the texts to index, in the order their ranks refer to.
    """

    def __init__(self, documents: Sequence[str]) -> None:
        try:
            import bm25s
        except ImportError as e:
            raise ImportError("episode recall needs BM25: pip install bm25s") from e
        self.size = len(documents)
        self._retriever: bm25s.BM25 | None = None
        if documents:
            # An empty document would give bm25s a zero-length row; the empty token keeps it indexable.
            corpus = [_terms(doc) or [""] for doc in documents]
            self._retriever = bm25s.BM25()
            self._retriever.index(corpus, show_progress=False)

    def rank(self, query: str) -> list[int]:
        """Indexes of all documents sharing a term with ``query``, best first."""
        if self._retriever is None:
            return []
        ids = self._retriever.get_tokens_ids([t for t in _terms(query) if t])
        if not ids:
            return []
        scores = np.asarray(self._retriever.get_scores_from_ids(ids))
        order = np.argsort(-scores, kind="stable")
        return [int(i) for i in order if scores[i] > 0]
