"""Opening the database: migrations, connection settings, reopening and clear failures."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from mcphive.errors import StoreError
from mcphive.memory import EpisodicMemory, SyncEpisodicMemory
from mcphive.memory._engine import MIGRATIONS_DIR
from mcphive.memory._tables import Base
from mcphive.types import Task, TaskStatus


def test_the_migrated_schema_equals_the_orm_metadata(memory: EpisodicMemory) -> None:
    with memory.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
        revision = context.get_current_revision()

    assert diffs == []
    assert revision == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def test_open_creates_the_missing_folder_of_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "mcphive.db"

    SyncEpisodicMemory.open(f"sqlite:///{path}").close()

    assert path.is_file()


def test_connections_use_wal_foreign_keys_and_a_busy_timeout(memory: EpisodicMemory) -> None:
    with memory.engine.connect() as connection:
        settings = [connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("journal_mode", "foreign_keys")]
        timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()

    assert settings == ["wal", 1]
    assert timeout is not None and timeout > 0


@pytest.mark.anyio
async def test_reopening_an_existing_database_keeps_its_tasks(db_url: str) -> None:
    first = EpisodicMemory.open(db_url)
    task = Task(text="keep me", workspace="/w")
    await first.record_task(task)
    second = EpisodicMemory.open(db_url)
    try:
        await second.set_status(task.id, TaskStatus.SUCCEEDED)
        [summary] = await first.recent()
    finally:
        first.close()
        second.close()
    third = EpisodicMemory.open(db_url)
    try:
        assert [s.id for s in await third.recent()] == [task.id]
    finally:
        third.close()
    assert summary.status is TaskStatus.SUCCEEDED


@pytest.mark.anyio
async def test_concurrent_writers_on_one_database_all_succeed(db_url: str) -> None:
    # Separate stores mean separate engines and connections, as with separate worker processes.
    stores = [EpisodicMemory.open(db_url) for _ in range(3)]
    try:
        async with anyio.create_task_group() as group:
            for n, store in enumerate(stores):
                for i in range(10):
                    group.start_soon(store.record_task, Task(id=f"t{n}-{i}", text="x", workspace="/w"))
        assert len(await stores[0].recent(100)) == 30
    finally:
        for store in stores:
            store.close()


def test_an_in_memory_database_is_shared_across_threads() -> None:
    async def scenario() -> list[str]:
        memory = EpisodicMemory.open("sqlite://")
        try:
            await memory.record_task(Task(id="mem1", text="x", workspace="/w"))
            return [s.id for s in await memory.recent()]
        finally:
            memory.close()

    assert anyio.run(scenario) == ["mem1"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", r"invalid database URL 'not a url'.*use e\.g\. 'sqlite:////path/to/mcphive\.db'"),
        ("nosuchdb://host/db", r"no database driver for nosuchdb://host/db"),
    ],
)
def test_a_bad_url_is_a_store_error_that_says_what_to_use(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        SyncEpisodicMemory.open(url)


def test_a_path_under_a_regular_file_is_a_store_error_naming_the_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")

    with pytest.raises(StoreError, match=r"cannot create the folder .*not-a-folder.* choose a writable data_dir"):
        SyncEpisodicMemory.open(f"sqlite:///{blocker / 'sub' / 'mcphive.db'}")


def test_a_database_path_that_is_a_folder_is_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "mcphive.db"
    folder.mkdir()

    with pytest.raises(StoreError, match=r"cannot open database .*mcphive\.db: unable to open database file"):
        SyncEpisodicMemory.open(f"sqlite:///{folder}")


def test_a_database_file_that_is_not_sqlite_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "mcphive.db"
    path.write_bytes(b"this is not a database" * 100)

    with pytest.raises(StoreError, match=r"cannot open database .*file is not a database"):
        SyncEpisodicMemory.open(f"sqlite:///{path}")


def test_a_password_in_the_url_never_appears_in_the_error() -> None:
    with pytest.raises(StoreError) as caught:
        SyncEpisodicMemory.open("nosuchdb://admin:hunter2@host/db")

    assert "hunter2" not in str(caught.value)


def test_the_alembic_version_table_is_the_only_table_besides_the_orm_ones(memory: EpisodicMemory) -> None:
    with memory.engine.connect() as connection:
        names = set(connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())

    assert names == set(Base.metadata.tables) | {"alembic_version"}


def test_a_database_from_a_newer_mcphive_is_a_store_error_that_says_so(db_url: str) -> None:
    SyncEpisodicMemory.open(db_url).close()
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()

    with pytest.raises(StoreError, match="created by a newer mcphive"):
        SyncEpisodicMemory.open(db_url)
