"""BM25 for episode recall: the RAG tokeniser plus English stemming, over single episodes or windows.

Tokens come from :func:`mcphive.lexical.tokenize` (stopwords dropped, identifiers split);
episodes are conversational, so "painted" must match "paint", and the tokens are also stemmed
with Snowball (PyStemmer) when it is installed. A *window* index concatenates each episode with
its neighbours in the same thread: the answer to "what did you paint?" is the next turn, which
shares no word with the question.

Loading a scope tokenises every episode several times (alone, in each window, in each moment), so
terms are computed per word and memoised: the tokeniser treats each word (a run of word characters) on
its own, hence the terms of a text are the concatenated terms of its words.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from mcphive.lexical import LexicalIndex, tokenize

__all__ = ["stemmed_index", "terms", "windows"]

log = logging.getLogger(__name__)


def _load_stemmer() -> Any:
    try:
        import Stemmer
    except ImportError:
        log.info("PyStemmer is not installed; episode recall matches words without stemming (pip install PyStemmer)")
        return None
    return Stemmer.Stemmer("english")


_STEMMER = _load_stemmer()
_WORD = re.compile(r"\w+")
"""What :func:`mcphive.lexical.tokenize` splits a text into before it handles each word alone."""


@lru_cache(maxsize=1 << 17)
def _word_terms(word: str) -> tuple[str, ...]:
    tokens = tokenize(word)
    return tuple(_STEMMER.stemWords(tokens)) if _STEMMER is not None else tuple(tokens)


def terms(text: str) -> list[str]:
    """The stemmed BM25 terms of ``text``: :func:`mcphive.lexical.tokenize`, then Snowball stemming."""
    return [term for word in _WORD.findall(text) for term in _word_terms(word)]


def windows(texts: Sequence[str], threads: Sequence[str], span: int) -> list[str]:
    """Each text joined with up to ``span`` texts before and after it that share its thread."""
    out = []
    for row, thread in enumerate(threads):
        low, high = max(row - span, 0), min(row + span + 1, len(texts))
        out.append(" ".join(texts[other] for other in range(low, high) if threads[other] == thread))
    return out


def stemmed_index(documents: Sequence[str]) -> LexicalIndex:
    """The shared BM25 index over ``documents``, with stemmed terms."""
    return LexicalIndex(documents, tokenizer=terms)
