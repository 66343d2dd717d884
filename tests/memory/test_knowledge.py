"""The knowledge base: asserting facts (an upsert) and querying them per tenant."""

from __future__ import annotations

import pytest

from mcphive.errors import UsageError
from mcphive.memory import EpisodicMemory, KnowledgeBase

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
