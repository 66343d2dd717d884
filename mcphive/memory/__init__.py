"""Episodic memory and knowledge base over SQLAlchemy (SQLite by default, PostgreSQL at scale).

:class:`EpisodicMemory` and :class:`KnowledgeBase` are async; each wraps a blocking twin
(:class:`SyncEpisodicMemory`, :class:`SyncKnowledgeBase`, also reachable as ``.sync``) whose
methods run in a worker thread. Opening a memory migrates its database to the newest schema
with the Alembic migrations shipped in ``mcphive/memory/migrations``.
"""

from __future__ import annotations

from typing import Any

from ._convert import RESULT_CAP
from .episodes import Episode, EpisodeStore, RecallHit, RecallScope, RecallWeights
from .episodic import EpisodicMemory
from .knowledge import Fact, KnowledgeBase, SyncKnowledgeBase
from .sync import SyncEpisodicMemory, TaskSummary

__all__ = [
    "RESULT_CAP",
    "ConsolidationReport",
    "Episode",
    "EpisodeStore",
    "EpisodicMemory",
    "ExtractiveSummarizer",
    "Fact",
    "KnowledgeBase",
    "ModelSummarizer",
    "RecallHit",
    "RecallScope",
    "RecallWeights",
    "Summarizer",
    "SyncEpisodicMemory",
    "SyncKnowledgeBase",
    "TaskSummary",
]

_CONSOLIDATION = ("ConsolidationReport", "ExtractiveSummarizer", "ModelSummarizer", "Summarizer")


def __getattr__(name: str) -> Any:
    # Consolidation pulls in numpy and the stemmer; load it on first use only.
    if name in _CONSOLIDATION:
        from . import _consolidate

        return getattr(_consolidate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
