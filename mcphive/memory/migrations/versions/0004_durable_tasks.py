"""Durable task states: room for ``awaiting_approval``, the approval record, the idempotency ledger, fair share.

Revision ID: 0004_durable_tasks
Revises: 0003_task_queue
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_durable_tasks"
down_revision = "0003_task_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Widen the status columns (``awaiting_approval`` has 17 characters), add the approval record and the ledger.

    Fair share: each queued row gets its ``turn`` in its tenant's line, and the claim's index
    gains the tenant so that each (class, tenant)'s oldest rows are one short range scan.
    """
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("status", existing_type=sa.String(length=16), type_=sa.String(length=32))
    with op.batch_alter_table("task_queue") as batch:
        batch.alter_column("state", existing_type=sa.String(length=16), type_=sa.String(length=32))
        # The pending writing call of a parked task and the decisions already taken for the task.
        batch.add_column(sa.Column("approval", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("turn", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.drop_index(op.f("ix_task_queue_state_rank_enqueued_at_seq"), table_name="task_queue")
    op.create_index(
        op.f("ix_task_queue_state_rank_tenant_enqueued_at_seq"),
        "task_queue",
        ["state", "rank", "tenant", "enqueued_at", "seq"],
    )
    op.create_table(
        "tool_ledger",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        # A stable key of one side-effecting call: its step position and a hash of tool and arguments.
        sa.Column("call_key", sa.String(length=128), nullable=False),
        sa.Column("server", sa.String(length=256), nullable=False),
        sa.Column("tool", sa.String(length=256), nullable=False),
        sa.Column("arguments", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("structured", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "call_key", name=op.f("pk_tool_ledger")),
    )


def downgrade() -> None:
    """Drop the ledger, the turns and the approval record, restore the claim's index, narrow the status columns."""
    op.drop_table("tool_ledger")
    op.drop_index(op.f("ix_task_queue_state_rank_tenant_enqueued_at_seq"), table_name="task_queue")
    op.create_index(
        op.f("ix_task_queue_state_rank_enqueued_at_seq"), "task_queue", ["state", "rank", "enqueued_at", "seq"]
    )
    with op.batch_alter_table("task_queue") as batch:
        batch.drop_column("turn")
        batch.drop_column("approval")
        batch.alter_column("state", existing_type=sa.String(length=32), type_=sa.String(length=16))
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("status", existing_type=sa.String(length=32), type_=sa.String(length=16))
