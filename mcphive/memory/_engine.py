"""Engine creation, SQLite connection settings and schema migration for the memory store.

One engine per store, created once. On SQLite every connection gets WAL, enforced foreign
keys and a busy timeout, and transactions are begun explicitly so that writers take the
write lock up front (``BEGIN IMMEDIATE``) instead of failing with "database is locked" when
two of them upgrade a read lock at the same moment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from anyio import to_thread
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from mcphive.errors import StoreError

__all__ = [
    "BEGIN_OPTION",
    "MIGRATIONS_DIR",
    "core_transaction",
    "create_store_engine",
    "describe",
    "migrate",
    "run_blocking",
    "transaction",
    "writer",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BEGIN_OPTION = "mcphive_begin"
"""Execution option naming the SQL a SQLite transaction starts with (``BEGIN`` by default)."""

BUSY_TIMEOUT_MS = 30_000
# Arbitrary but fixed key: serialises concurrent migrations of one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x6D637068


def describe(url: str | URL) -> str:
    """Return ``url`` with any password hidden, for error messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as e:
        raise StoreError(
            f"invalid database URL {url!r}: {e}; use e.g. 'sqlite:////path/to/mcphive.db' or "
            "'postgresql+psycopg://user@host/db'"
        ) from e


def _sqlite_file(parsed: URL) -> Path | None:
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _make_parent(path: Path, shown: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(
            f"cannot create the folder {path.parent} for database {shown}: {e.strerror or e}; "
            "choose a writable data_dir (MCPHIVE_DATA_DIR) or fix its permissions"
        ) from e


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy's "begin" event below: pysqlite's implicit
    # BEGIN would come too late (only before DML) and could not be IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # Safe with WAL (no corruption on power loss, only the last commits may be lost) and
        # saves an fsync per commit, which dominates a ~10 ms task budget.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    first_inline = _FIRST_INLINE.get()
    # An inline operation's first transaction must not wait for the lock; every other one waits as usual.
    # The setting stays on the connection, so it is changed only when the next use wants the other one.
    busy_ms = 0 if first_inline else BUSY_TIMEOUT_MS
    if connection.info.get(_BUSY_MS, BUSY_TIMEOUT_MS) != busy_ms:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {busy_ms}")
        connection.info[_BUSY_MS] = busy_ms
    try:
        connection.exec_driver_sql(connection.get_execution_options().get(BEGIN_OPTION, "BEGIN"))
    except OperationalError as e:
        if first_inline and "locked" in str(e.orig):
            raise _WouldWait from e
        raise
    if first_inline:
        _FIRST_INLINE.set(False)  # the operation's later transactions wait for the lock as usual


class _WouldWait(Exception):
    """An inline operation's first transaction found the database locked; run the operation in a thread."""


_FIRST_INLINE: ContextVar[bool] = ContextVar("mcphive_store_first_inline", default=False)
"""True while an inline operation (:func:`run_blocking`) has not begun its first transaction."""
_BUSY_MS = "mcphive_busy_timeout_ms"


async def run_blocking(engine: Engine, operation: Callable[[], T]) -> T:
    """Run ``operation`` — one short store operation of a transaction or two on ``engine`` — for async code.

    On SQLite it runs inline, on the event loop's thread, when its first transaction can begin at
    once: that transaction begins with SQLite's busy timeout at zero, and if another connection holds
    the write lock the operation (nothing of it done yet) is run again in a worker thread, where it
    waits as usual. On a small, busy machine the hop to a thread and back costs more than the
    transaction (measured: a queue insert 0.75 ms inline, 2.2 ms through a thread), and a task makes
    about eight of them. Anything else (PostgreSQL: a network round trip) always runs in a thread.
    Long operations (bulk imports, recall with embeddings) must call ``to_thread`` themselves.
    """
    if engine.dialect.name == "sqlite":
        token = _FIRST_INLINE.set(True)
        try:
            return operation()
        except _WouldWait:
            pass
        finally:
            _FIRST_INLINE.reset(token)
    return await to_thread.run_sync(operation)


def create_store_engine(url: str) -> Engine:
    """Create the engine for ``url``: SQLite gets its folder created and its pragmas set.

    Raises:
        StoreError: the URL is invalid, its driver is not installed, or the folder cannot be created.
    """
    parsed = _parse(url)
    shown = describe(parsed)
    kwargs: dict[str, Any] = {}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        path = _sqlite_file(parsed)
        if path is None:
            # An in-memory database exists once per connection: share one connection across
            # the worker threads that run the blocking calls.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            _make_parent(path, shown)
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as e:
        raise StoreError(
            f"no database driver for {shown}: {e}; install the driver (e.g. `pip install psycopg[binary]`) "
            "or use a sqlite:/// URL"
        ) from e
    except (ArgumentError, TypeError) as e:
        raise StoreError(f"cannot create an engine for {shown}: {e}; check the URL and its query options") from e
    if is_sqlite:
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def writer(engine: Engine) -> Engine:
    """Return a view of ``engine`` whose transactions take SQLite's write lock when they begin."""
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{BEGIN_OPTION: "BEGIN IMMEDIATE"})


def _alembic_config(connection: Connection) -> Config:
    # Built in code: an installed package has no alembic.ini next to the caller's cwd.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to the newest schema, in one transaction.

    Concurrent openers are serialised (SQLite write lock, PostgreSQL advisory lock), so two
    processes opening a fresh database at once do not both try to create the tables.

    Raises:
        StoreError: the database cannot be reached, written or migrated.
    """
    shown = describe(engine.url)
    try:
        with writer(engine).connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            command.upgrade(_alembic_config(connection), "head")
    except SQLAlchemyError as e:
        raise StoreError(
            f"cannot open database {shown}: {_reason(e)}; check that the path is writable, "
            "the server is reachable and no other program holds the database"
        ) from e
    except CommandError as e:
        # Typically a revision this package does not ship: the database was migrated by a newer mcphive.
        raise StoreError(
            f"cannot migrate database {shown}: {e}; it was probably created by a newer mcphive, "
            "so upgrade mcphive or point data_dir elsewhere"
        ) from e
    log.debug("memory schema at head", extra={"database": shown})


def _reason(error: SQLAlchemyError) -> str:
    orig = getattr(error, "orig", None)
    return str(orig) if orig is not None else str(error).splitlines()[0]


@contextmanager
def transaction(engine: Engine, what: str) -> Iterator[Session]:
    """One ORM session inside one transaction on ``engine``; database errors become :class:`StoreError`.

    Args:
        engine: the engine, or its :func:`writer` view for transactions that write.
        what: the operation, completing "could not ..." in the error message.
    """
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except SQLAlchemyError as e:
        raise _store_error(engine, what, e) from e


@contextmanager
def core_transaction(engine: Engine, what: str) -> Iterator[Connection]:
    """One connection inside one transaction on ``engine``, for Core statements; see :func:`transaction`.

    The hot paths (queue, ledger, task records) take this one: an ORM session costs about
    0.15 ms more per transaction than the connection under it, and they use no ORM feature.
    """
    try:
        with engine.begin() as connection:
            yield connection
    except SQLAlchemyError as e:
        raise _store_error(engine, what, e) from e


def _store_error(engine: Engine, what: str, error: SQLAlchemyError) -> StoreError:
    return StoreError(
        f"could not {what} in the memory database {describe(engine.url)}: {_reason(error)}; "
        "check that the disk is writable and that no other program holds a lock on the database"
    )
