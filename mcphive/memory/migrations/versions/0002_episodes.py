"""Episodes: scoped events with their embedding, for hybrid (BM25 + dense) recall.

Revision ID: 0002_episodes
Revises: 0001
Create Date: 2026-11-28

The embedding is a float32 vector stored as bytes (``LargeBinary``): Debian's PostgreSQL 15 has
no pgvector, and recall scores a scope's few vectors with numpy after filtering by indexed columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_episodes"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the episodes table and its scope indexes."""
    op.create_table(
        "episodes",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("workspace", sa.Text(), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("thread", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("metadata", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_episodes")),
        sa.UniqueConstraint("id", name=op.f("uq_episodes_id")),
    )
    op.create_index(op.f("ix_episodes_tenant_thread_created_at"), "episodes", ["tenant", "thread", "created_at"])
    op.create_index(op.f("ix_episodes_tenant_agent_created_at"), "episodes", ["tenant", "agent", "created_at"])
    op.create_index(op.f("ix_episodes_tenant_created_at"), "episodes", ["tenant", "created_at"])


def downgrade() -> None:
    """Drop the episodes table (its indexes go with it)."""
    op.drop_table("episodes")
