"""Episode consolidation: each episode may name the note that summarises it.

Revision ID: 0006_episode_consolidation
Revises: 0005_knowledge_validity
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_episode_consolidation"
down_revision = "0005_knowledge_validity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``episodes.consolidated_in`` (unset: not consolidated yet)."""
    with op.batch_alter_table("episodes") as batch:
        batch.add_column(sa.Column("consolidated_in", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Drop ``episodes.consolidated_in``; notes stay as plain episodes."""
    with op.batch_alter_table("episodes") as batch:
        batch.drop_column("consolidated_in")
