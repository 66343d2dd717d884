"""Fixtures for the router tests: a private PostgreSQL cluster for the session, and a queue URL per backend."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from _pg import pg_bin_dir, postgres_cluster

_databases = itertools.count()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A private PostgreSQL server started for this test session (~3 s), stopped and deleted after it."""
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set MCPHIVE_PG_BIN")
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def fresh_pg_url(pg_url: str) -> str:
    """A new, empty database on the session's PostgreSQL server."""
    name = f"test_{next(_databases)}"
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url
