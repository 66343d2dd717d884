"""Initial memory schema: tasks, route decisions, steps, tool calls and facts.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Migrations spell out plain SQLAlchemy types (``DateTime(timezone=True)`` where the ORM uses
its UTC decorator) so that they never change when application code does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(none_as_null=True), nullable=nullable)


def _create_tasks() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("workspace", sa.Text(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("requested_agent", sa.String(length=64), nullable=True),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("model_calls", sa.Integer(), nullable=False),
        _json("timings"),
        _when("created_at"),
        _when("started_at", nullable=True),
        _when("finished_at", nullable=True),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["tasks.id"], name=op.f("fk_tasks_parent_id_tasks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index(op.f("ix_tasks_created_at"), "tasks", ["created_at"])
    op.create_index(op.f("ix_tasks_parent_id"), "tasks", ["parent_id"])
    op.create_index(op.f("ix_tasks_tenant_user_name_created_at"), "tasks", ["tenant", "user_name", "created_at"])


def _create_route_decisions() -> None:
    op.create_table(
        "route_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        _json("runners_up"),
        sa.Column("reason", sa.Text(), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_route_decisions_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_decisions")),
    )
    op.create_index(op.f("ix_route_decisions_task_id"), "route_decisions", ["task_id"])


def _create_steps_and_tool_calls() -> None:
    op.create_table(
        "steps",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_steps_task_id_tasks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "position", name=op.f("pk_steps")),
    )
    op.create_table(
        "tool_calls",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("step_position", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("server", sa.String(length=256), nullable=False),
        sa.Column("tool", sa.String(length=256), nullable=False),
        _json("arguments"),
        sa.Column("result", sa.Text(), nullable=False),
        _json("structured", nullable=True),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("chosen_by", sa.String(length=16), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id", "step_position"],
            ["steps.task_id", "steps.position"],
            name=op.f("fk_tool_calls_task_id_step_position_steps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "step_position", "position", name=op.f("pk_tool_calls")),
    )


def _create_facts() -> None:
    op.create_table(
        "facts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("predicate", sa.String(length=256), nullable=False),
        sa.Column("object", sa.String(length=2048), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facts")),
        sa.UniqueConstraint(
            "tenant", "subject", "predicate", "object", name=op.f("uq_facts_tenant_subject_predicate_object")
        ),
    )
    op.create_index(op.f("ix_facts_tenant_predicate"), "facts", ["tenant", "predicate"])


def upgrade() -> None:
    """Create every table of the memory and the knowledge base."""
    _create_tasks()
    _create_route_decisions()
    _create_steps_and_tool_calls()
    _create_facts()


def downgrade() -> None:
    """Drop every table, children first."""
    for table in ("tool_calls", "steps", "route_decisions", "facts", "tasks"):
        op.drop_table(table)
