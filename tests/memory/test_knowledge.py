"""The knowledge base: asserting, superseding, retracting and querying facts per tenant, now and as of then."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _pg import pg_bin_dir, postgres_cluster
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from mcphive.errors import UsageError
from mcphive.memory import EpisodicMemory, KnowledgeBase, SyncEpisodicMemory, SyncKnowledgeBase
from mcphive.memory._engine import _alembic_config
from mcphive.memory._tables import Base

pytestmark = pytest.mark.anyio


async def test_asserting_the_same_fact_again_updates_it_instead_of_duplicating(memory: EpisodicMemory) -> None:
    kb = KnowledgeBase(memory)
    first = await kb.assert_fact("repo", "uses", "pytest", source="task:1")

    second = await kb.assert_fact("repo", "uses", "pytest", source="task:2", confidence=0.5)

    assert (second.id, second.created_at) == (first.id, first.created_at)
    assert (second.source, second.confidence) == ("task:2", 0.5)
    assert await kb.query("repo") == [second]


async def test_query_filters_by_subject_predicate_and_tenant(memory: EpisodicMemory) -> None:
    kb = KnowledgeBase(memory.engine)
    await kb.assert_fact("repo", "uses", "pytest")
    await kb.assert_fact("repo", "uses", "ruff")
    await kb.assert_fact("repo", "license", "Apache-2.0")
    await kb.assert_fact("ci", "uses", "github actions")
    await kb.assert_fact("repo", "uses", "nose", tenant="other")

    assert [f.object for f in await kb.query("repo", "uses")] == ["pytest", "ruff"]
    assert [f.object for f in await kb.query(predicate="uses")] == ["pytest", "ruff", "github actions"]
    assert [f.object for f in await kb.query()] == ["pytest", "ruff", "Apache-2.0", "github actions"]
    assert [(f.object, f.tenant) for f in await kb.query("repo", tenant="other")] == [("nose", "other")]
    assert await kb.query("nothing") == []


async def test_facts_persist_across_reopening(db_url: str) -> None:
    first = EpisodicMemory.open(db_url)
    try:
        await KnowledgeBase(first).assert_fact("service", "owned_by", "team-a")
    finally:
        first.close()
    second = EpisodicMemory.open(db_url)
    try:
        [fact] = await KnowledgeBase(second).query("service")
    finally:
        second.close()
    assert (fact.predicate, fact.object) == ("owned_by", "team-a")


@pytest.mark.parametrize(
    ("subject", "obj", "confidence", "message"),
    [
        ("", "x", 1.0, "non-empty subject"),
        ("s", "y" * 3000, 1.0, "object is 3000 characters"),
        ("s", "x", 1.5, "confidence 1.5 is out of range"),
    ],
)
async def test_invalid_facts_are_usage_errors(
    memory: EpisodicMemory, subject: str, obj: str, confidence: float, message: str
) -> None:
    kb = KnowledgeBase(memory)

    with pytest.raises(UsageError, match=message):
        await kb.assert_fact(subject, "p", obj, confidence=confidence)
    assert await kb.query() == []


# Validity time: superseding, retracting and looking back.

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(days=30)
T2 = T0 + timedelta(days=60)


async def test_a_new_object_for_a_functional_predicate_supersedes_the_old_fact(memory: EpisodicMemory) -> None:
    kb = KnowledgeBase(memory, functional={"owned_by"})
    old = await kb.assert_fact("module:prices", "owned_by", "team:pricing", source="task:41", valid_from=T0)

    new = await kb.assert_fact("module:prices", "owned_by", "team:checkout", source="task:97", valid_from=T1)

    assert [f.object for f in await kb.query("module:prices", "owned_by")] == ["team:checkout"]
    [then] = await kb.query("module:prices", "owned_by", as_of=T0 + timedelta(days=1))
    assert (then.id, then.object, then.source) == (old.id, "team:pricing", "task:41")
    assert (then.valid_from, then.valid_to, then.superseded_by) == (T0, T1, new.id)
    assert (new.valid_from, new.valid_to, new.superseded_by) == (T1, None, None)
    assert await kb.query("module:prices", as_of=T0 - timedelta(seconds=1)) == []
    assert [f.object for f in await kb.query("module:prices", history=True)] == ["team:pricing", "team:checkout"]


async def test_non_functional_predicates_accumulate_unless_told_to_supersede(memory: EpisodicMemory) -> None:
    kb = KnowledgeBase(memory)
    await kb.assert_fact("service:checkout", "depends_on", "service:payments")
    await kb.assert_fact("service:checkout", "depends_on", "service:stock")
    assert [f.object for f in await kb.query("service:checkout")] == ["service:payments", "service:stock"]

    replacement = await kb.assert_fact("service:checkout", "depends_on", "service:ledger", supersede=True)

    assert [f.object for f in await kb.query("service:checkout")] == ["service:ledger"]
    closed = [f for f in await kb.query("service:checkout", history=True) if f.valid_to is not None]
    assert sorted(f.object for f in closed) == ["service:payments", "service:stock"]
    assert {f.superseded_by for f in closed} == {replacement.id}


async def test_supersede_false_keeps_the_old_object_of_a_functional_predicate(memory: EpisodicMemory) -> None:
    kb = KnowledgeBase(memory, functional={"owned_by"})
    await kb.assert_fact("repo", "owned_by", "alice")
    await kb.assert_fact("repo", "owned_by", "bob", supersede=False)
    assert [f.object for f in await kb.query("repo")] == ["alice", "bob"]


async def test_an_object_can_return_after_being_superseded(memory: EpisodicMemory) -> None:
    kb = KnowledgeBase(memory, functional={"status"})
    first = await kb.assert_fact("deploy", "status", "green", valid_from=T0)
    await kb.assert_fact("deploy", "status", "red", valid_from=T1)
    again = await kb.assert_fact("deploy", "status", "green", valid_from=T2)

    assert again.id != first.id
    assert [(f.object, f.valid_to) for f in await kb.query("deploy", history=True)] == [
        ("green", T1),
        ("red", T2),
        ("green", None),
    ]
    assert [f.object for f in await kb.query("deploy", as_of=T1)] == ["red"]


async def test_retracting_ends_a_fact_without_deleting_it(memory: EpisodicMemory) -> None:
    kb = KnowledgeBase(memory)
    await kb.assert_fact("service:checkout", "depends_on", "service:payments", valid_from=T0)
    await kb.assert_fact("service:checkout", "depends_on", "service:stock", valid_from=T0)

    [gone] = await kb.retract("service:checkout", "depends_on", "service:stock", valid_to=T1)

    assert (gone.object, gone.valid_to, gone.superseded_by) == ("service:stock", T1, None)
    assert [f.object for f in await kb.query("service:checkout")] == ["service:payments"]
    assert len(await kb.query("service:checkout", as_of=T0)) == 2
    assert await kb.retract("service:checkout", "depends_on", "service:stock") == []


async def test_query_matches_by_object_too(memory: EpisodicMemory) -> None:
    kb = KnowledgeBase(memory)
    await kb.assert_fact("service:checkout", "depends_on", "service:payments")
    await kb.assert_fact("service:refunds", "depends_on", "service:payments")
    await kb.assert_fact("service:refunds", "depends_on", "service:ledger")
    dependants = await kb.query(predicate="depends_on", obj="service:payments")
    assert [f.subject for f in dependants] == ["service:checkout", "service:refunds"]


async def test_a_supersession_that_would_end_a_fact_before_it_began_is_refused_and_writes_nothing(
    memory: EpisodicMemory,
) -> None:
    kb = KnowledgeBase(memory, functional={"owned_by"})
    await kb.assert_fact("repo", "owned_by", "alice", valid_from=T1)

    with pytest.raises(UsageError, match="cannot end before it began"):
        await kb.assert_fact("repo", "owned_by", "bob", valid_from=T0)

    assert [f.object for f in await kb.query("repo", history=True)] == ["alice"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"as_of": datetime(2026, 1, 1)}, "has no time zone"),
        ({"as_of": T0, "history": True}, "not both"),
    ],
)
async def test_bad_validity_queries_are_usage_errors(
    memory: EpisodicMemory, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        await KnowledgeBase(memory).query("repo", **kwargs)


async def test_the_memory_exposes_its_knowledge_base_with_its_functional_predicates(db_url: str) -> None:
    memory = EpisodicMemory.open(db_url, functional_predicates=["owned_by"])
    try:
        await memory.knowledge.assert_fact("repo", "owned_by", "alice")
        await memory.knowledge.assert_fact("repo", "owned_by", "bob")
        assert [f.object for f in await memory.knowledge.query("repo")] == ["bob"]
    finally:
        memory.close()


def test_migrating_a_database_with_facts_gives_them_validity_from_their_creation(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with engine.begin() as connection:
            config = _alembic_config(connection)
            command.upgrade(config, "0004_durable_tasks")
            connection.execute(
                text(
                    "INSERT INTO facts (id, tenant, subject, predicate, object, source, confidence, created_at) "
                    "VALUES ('f1', 'default', 'repo', 'uses', 'pytest', 'task:1', 1.0, '2025-05-01 10:00:00.000000')"
                )
            )
            command.upgrade(config, "head")
        [fact] = SyncKnowledgeBase(engine).query("repo")
        assert (fact.valid_from, fact.valid_to, fact.source) == (datetime(2025, 5, 1, 10, tzinfo=UTC), None, "task:1")
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0004_durable_tasks")
            rows = connection.execute(text("SELECT subject, object FROM facts")).all()
        assert [tuple(row) for row in rows] == [("repo", "pytest")]
    finally:
        engine.dispose()


def test_on_postgresql_concurrent_supersessions_leave_exactly_one_current_fact() -> None:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set MCPHIVE_PG_BIN")
    with postgres_cluster() as url:
        memory = SyncEpisodicMemory.open(url)
        try:
            with memory.engine.connect() as connection:
                diffs = compare_metadata(
                    MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
                )
            kb = SyncKnowledgeBase(memory, functional={"owned_by"})
            kb.assert_fact("repo", "owned_by", "team:0", valid_from=T0)
            with ThreadPoolExecutor(max_workers=6) as pool:
                list(pool.map(lambda n: kb.assert_fact("repo", "owned_by", f"team:{n}"), range(1, 13)))
            current = kb.query("repo")
            history = kb.query("repo", history=True)
            past = kb.query("repo", as_of=T0 + timedelta(seconds=1))
        finally:
            memory.close()

    assert diffs == []
    assert len(current) == 1
    assert len(history) == 13
    assert [f.object for f in past] == ["team:0"]
    # The closed versions form one chain: each names a successor that exists, and ends where it begins.
    by_id = {f.id: f for f in history}
    for fact in history:
        if fact.id != current[0].id:
            successor = by_id[fact.superseded_by or ""]
            assert fact.valid_to == successor.valid_from
