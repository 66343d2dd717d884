"""Episodic memory and knowledge base over SQLAlchemy (SQLite by default, PostgreSQL at scale).

:class:`EpisodicMemory` and :class:`KnowledgeBase` are async; each wraps a blocking twin
(:class:`SyncEpisodicMemory`, :class:`SyncKnowledgeBase`, also reachable as ``.sync``) whose
methods run in a worker thread. Opening a memory migrates its database to the newest schema
with the Alembic migrations shipped in ``mcphive/memory/migrations``.
"""

from __future__ import annotations

from ._convert import RESULT_CAP
from .episodes import Episode, EpisodeStore, RecallHit, RecallScope, RecallWeights
from .episodic import EpisodicMemory
from .knowledge import Fact, KnowledgeBase, SyncKnowledgeBase
from .sync import SyncEpisodicMemory, TaskSummary

__all__ = [
    "RESULT_CAP",
    "Episode",
    "EpisodeStore",
    "EpisodicMemory",
    "Fact",
    "KnowledgeBase",
    "RecallHit",
    "RecallScope",
    "RecallWeights",
    "SyncEpisodicMemory",
    "SyncKnowledgeBase",
    "TaskSummary",
]
