"""Alembic environment for the memory schema.

mcphive runs migrations programmatically (see ``mcphive.memory._engine.migrate``): the
caller passes an open connection in ``config.attributes["connection"]``, already inside the
transaction that holds the migration lock.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection

from mcphive.memory._tables import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the caller's connection, or one built from ``sqlalchemy.url`` when there is none."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        context.config.get_section(context.config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as own:
        _run(own)


if context.is_offline_mode():
    raise RuntimeError("mcphive's memory schema has no offline (SQL script) mode; run migrations against a database")
run_migrations_online()
