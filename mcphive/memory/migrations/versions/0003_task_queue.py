"""The durable task queue.

Revision ID: 0003_task_queue
Revises: 0002_episodes
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_task_queue"
down_revision = "0002_episodes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the ``task_queue`` table and the indexes of its claim and reclaim queries."""
    op.create_table(
        "task_queue",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("enqueued_at", sa.Float(), nullable=False),
        sa.Column("deadline", sa.Float(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("heartbeat_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_task_queue")),
        sa.UniqueConstraint("task_id", name=op.f("uq_task_queue_task_id")),
    )
    op.create_index(
        op.f("ix_task_queue_state_rank_enqueued_at_seq"), "task_queue", ["state", "rank", "enqueued_at", "seq"]
    )
    has_deadline = sa.text("deadline IS NOT NULL")
    queued_with_deadline = sa.text("state = 'queued' AND deadline IS NOT NULL")
    op.create_index(
        op.f("ix_task_queue_deadline"),
        "task_queue",
        ["deadline"],
        sqlite_where=has_deadline,
        postgresql_where=queued_with_deadline,
    )
    op.create_index(op.f("ix_task_queue_state_lease_expires_at"), "task_queue", ["state", "lease_expires_at"])
    op.create_index(op.f("ix_task_queue_state_agent"), "task_queue", ["state", "agent"])


def downgrade() -> None:
    """Drop the queue table with its indexes."""
    op.drop_table("task_queue")
