"""Knowledge-base validity time: facts are superseded or retracted, never deleted.

Revision ID: 0005_knowledge_validity
Revises: 0004_durable_tasks
Create Date: 2026-11-28

Each fact gains ``valid_from`` (existing facts: their ``created_at``), ``valid_to`` (open while
unset) and ``superseded_by``. The unique triple per tenant becomes a partial unique index over
open facts only, so a triple can be closed and asserted again later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_knowledge_validity"
down_revision = "0004_durable_tasks"
branch_labels = None
depends_on = None

_OPEN = "valid_to IS NULL"
_TRIPLE = ["tenant", "subject", "predicate", "object"]


def upgrade() -> None:
    """Add the validity columns, backfill ``valid_from`` and make only open triples unique."""
    with op.batch_alter_table("facts") as batch:
        batch.add_column(sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("superseded_by", sa.String(length=64), nullable=True))
        batch.drop_constraint("uq_facts_tenant_subject_predicate_object", type_="unique")
    op.execute("UPDATE facts SET valid_from = created_at")
    with op.batch_alter_table("facts") as batch:
        batch.alter_column("valid_from", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index(
        "uq_facts_open_tenant_subject_predicate_object",
        "facts",
        _TRIPLE,
        unique=True,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )
    op.create_index(op.f("ix_facts_tenant_subject_predicate"), "facts", ["tenant", "subject", "predicate"])


def downgrade() -> None:
    """Drop the history (closed facts) and the validity columns; restore the plain unique triple."""
    op.drop_index(op.f("ix_facts_tenant_subject_predicate"), table_name="facts")
    op.drop_index("uq_facts_open_tenant_subject_predicate_object", table_name="facts")
    op.execute("DELETE FROM facts WHERE valid_to IS NOT NULL")
    with op.batch_alter_table("facts") as batch:
        batch.drop_column("superseded_by")
        batch.drop_column("valid_to")
        batch.drop_column("valid_from")
        batch.create_unique_constraint("uq_facts_tenant_subject_predicate_object", _TRIPLE)
