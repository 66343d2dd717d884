"""Optional second stage of a search: reorder the fused candidates with a finer (and slower) scorer.

:class:`~mcphive.rag.store.DocumentStore` takes any :class:`Reranker`. Two ship here:

- :class:`LexicalOverlapReranker`: cheap, no model. Prefers candidates that contain more of the
  query's terms (the same tokenizer as BM25, so identifiers count whole and by parts), keeping the
  fused order among equals.
- :class:`CrossEncoderReranker`: a sentence-transformers ``CrossEncoder`` loaded from a local
  folder. No cross-encoder weights are installable offline here (no model package ships one), so
  it needs a model folder you provide (for example a downloaded ``cross-encoder/ms-marco-MiniLM-L6-v2``);
  nothing is ever downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from mcphive.errors import ConfigError
from mcphive.lexical import tokenize

if TYPE_CHECKING:
    from mcphive.rag.store import Hit

__all__ = ["CrossEncoderReranker", "LexicalOverlapReranker", "Reranker", "RerankerName", "make_reranker"]

logger = logging.getLogger(__name__)

RerankerName = Literal["none", "lexical", "cross-encoder"]


@runtime_checkable
class Reranker(Protocol):
    """Reorders search candidates; may drop none and must not invent any."""

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """The same hits, best first, each with ``rerank_score`` set."""
        ...


class LexicalOverlapReranker:
    """Orders hits by the share of distinct query terms they contain; ties keep the fused order."""

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """Score each hit by query-term coverage (0..1) and sort, stably, by it."""
        terms = set(tokenize(query))
        if not terms:
            return [hit.model_copy(update={"rerank_score": 0.0}) for hit in hits]
        scored = [
            hit.model_copy(update={"rerank_score": len(terms & set(tokenize(hit.text))) / len(terms)}) for hit in hits
        ]
        return sorted(scored, key=lambda hit: -(hit.rerank_score or 0.0))


class CrossEncoderReranker:
    """Scores (query, chunk) pairs with a local sentence-transformers cross-encoder.

    Args:
        model_path: folder of a cross-encoder model (``config.json``, weights, tokenizer).
        device: torch device; ``None`` lets sentence-transformers choose.

    Raises:
        ConfigError: the folder does not exist or does not hold a loadable model.
    """

    def __init__(self, model_path: Path, *, device: str | None = None) -> None:
        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"no cross-encoder model at {str(path)!r} (config.json missing); set rag_cross_encoder_path to a "
                "local model folder, or use rag_reranker = 'lexical' or 'none'"
            )
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as e:
            raise ImportError(
                "the cross-encoder reranker needs sentence-transformers: pip install sentence-transformers"
            ) from e
        try:
            self._model: Any = CrossEncoder(str(path), device=device, local_files_only=True)
        except Exception as e:  # transformers raises OSError, ValueError, KeyError... for a bad folder
            raise ConfigError(f"cannot load the cross-encoder at {str(path)!r}: {e}; check the model folder") from e

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """The model's relevance score of each text for ``query`` (higher is better)."""
        if not texts:
            return []
        raw = self._model.predict([(query, text) for text in texts], show_progress_bar=False)
        return [float(value) for value in raw]

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """Sort hits by the cross-encoder's score."""
        values = self.scores(query, [hit.text for hit in hits])
        scored = [hit.model_copy(update={"rerank_score": value}) for hit, value in zip(hits, values, strict=True)]
        return sorted(scored, key=lambda hit: -(hit.rerank_score or 0.0))


def make_reranker(name: RerankerName, model_path: Path | None = None) -> Reranker | None:
    """The reranker a setting names (``None`` for ``"none"``).

    Raises:
        ConfigError: ``"cross-encoder"`` without a usable ``model_path``.
    """
    if name == "none":
        return None
    if name == "lexical":
        return LexicalOverlapReranker()
    if model_path is None:
        raise ConfigError(
            "rag_reranker = 'cross-encoder' needs rag_cross_encoder_path (a local model folder); "
            "no cross-encoder weights ship with mcphive"
        )
    return CrossEncoderReranker(model_path)
