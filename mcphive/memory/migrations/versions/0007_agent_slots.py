"""Per-agent concurrency slots: one row per run that holds a slot of its agent's limit.

Revision ID: 0007_agent_slots
Revises: 0006_episode_consolidation
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_agent_slots"
down_revision = "0006_episode_consolidation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``agent_slots`` (a slot counts while its owner's queue row is claimed under a live lease)."""
    op.create_table(
        "agent_slots",
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("taken_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_agent_slots")),
    )
    op.create_index(op.f("ix_agent_slots_agent"), "agent_slots", ["agent"])


def downgrade() -> None:
    """Drop ``agent_slots``."""
    op.drop_index(op.f("ix_agent_slots_agent"), table_name="agent_slots")
    op.drop_table("agent_slots")
