"""Consolidation: old episodes summarised into recallable notes, extractively or by a (scripted) model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _pg import pg_bin_dir, postgres_cluster
from mcp import Client

from mcphive.errors import ModelUnavailable, UsageError
from mcphive.inference.base import ChatRequest
from mcphive.inference.testing import FunctionModel, ScriptedModel
from mcphive.mcp_servers.memory import build_memory_server
from mcphive.memory import EpisodicMemory, ExtractiveSummarizer, ModelSummarizer
from mcphive.memory.episodes import Episode, EpisodeStore, RecallScope, SyncEpisodeStore
from mcphive.types import Principal

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=90)
ACME = RecallScope(tenant="acme")

DEPLOY_THREAD = [
    "The deploy of checkout failed at 02:10. The disk of build server b7 was full.",
    "Alice cleaned the docker cache on b7. The disk went from 100% to 41% used.",
    "The retry of the checkout deploy succeeded at 02:45.",
    "Bob asked whether lunch was ready.",
    "We agreed to add a disk-usage alert on every build server.",
]


def _thread(texts: list[str], thread: str, start: datetime, tenant: str = "acme") -> list[Episode]:
    return [
        Episode(
            tenant=tenant, thread=thread, agent="ops", kind="event", text=t, created_at=start + timedelta(minutes=n)
        )
        for n, t in enumerate(texts)
    ]


@pytest.fixture
def episodes(db_url: str) -> Iterator[EpisodeStore]:
    store = SyncEpisodeStore.open(db_url)
    yield EpisodeStore(store)
    store.close()


async def test_old_episodes_become_an_extractive_note_and_both_stay_recallable(episodes: EpisodeStore) -> None:
    old = _thread(DEPLOY_THREAD, "incident-1", OLD)
    fresh = _thread(["The deploy of search succeeded on the first try.", "Nothing else happened."], "t2", NOW)
    await episodes.record_many(old + fresh)

    report = await episodes.consolidate(ACME, older_than=timedelta(days=30), batch_size=10, now=NOW)

    [note] = report.notes
    assert (report.consolidated, report.methods) == (5, {"extractive": 1})
    assert (note.kind, note.thread, note.agent, note.tenant) == ("note", "incident-1", "ops", "acme")
    assert note.metadata["sources"] == [e.id for e in old]
    assert note.created_at == old[-1].created_at
    assert "disk" in note.text and len(note.text) < len(" ".join(DEPLOY_THREAD))
    assert "lunch" not in note.text  # the one off-topic sentence is the least central
    hits = await episodes.recall("why did the checkout deploy fail?", scope=ACME, k=10)
    kinds = {hit.episode.kind for hit in hits}
    assert kinds == {"note", "event"}
    assert await episodes.count(ACME) == len(old) + len(fresh) + 1


async def test_a_second_run_consolidates_only_what_is_new_and_due(episodes: EpisodeStore) -> None:
    await episodes.record_many(_thread(DEPLOY_THREAD, "incident-1", OLD))
    first = await episodes.consolidate(ACME, older_than=timedelta(days=30), batch_size=2, now=NOW)
    # Five episodes in batches of two: two notes, and the lone fifth waits for company.
    assert [len(n.metadata["sources"]) for n in first.notes] == [2, 2]

    later = _thread(
        ["The alert fired for b9 at 80% disk.", "Carol resized the b9 disk."], "incident-1", OLD + timedelta(days=1)
    )
    await episodes.record_many(later)
    second = await episodes.consolidate(ACME, older_than=timedelta(days=30), batch_size=2, now=NOW)
    third = await episodes.consolidate(ACME, older_than=timedelta(days=30), batch_size=2, now=NOW)

    assert [len(n.metadata["sources"]) for n in second.notes] == [2]
    assert second.notes[0].metadata["sources"][1] == later[0].id
    assert third.notes == []


async def test_the_model_writes_the_note_when_one_is_given(db_url: str) -> None:
    seen: list[ChatRequest] = []

    def reply(request: ChatRequest) -> str:
        seen.append(request)
        return "Checkout deploy failed on a full b7 disk; cache cleaned, retry succeeded, disk alerts agreed."

    memory = EpisodicMemory.open(db_url, retention=timedelta(days=30), consolidation_batch=10)
    try:
        await memory.episodes.record_many(_thread(DEPLOY_THREAD, "incident-1", OLD))
        report = await memory.consolidate(ACME, model=FunctionModel(reply))
        hits = await memory.recall("disk alerts", scope=ACME, k=3)
    finally:
        memory.close()

    [note] = report.notes
    assert note.text.startswith("Checkout deploy failed on a full b7 disk")
    assert report.methods == {"llm": 1}
    assert seen[0].tool_choice == "none"
    assert "build server b7 was full" in seen[0].messages[-1].content
    assert note.id in {hit.episode.id for hit in hits}


async def test_an_unavailable_or_silent_model_falls_back_to_the_extractive_note(episodes: EpisodeStore) -> None:
    def unavailable(request: ChatRequest) -> str:
        raise ModelUnavailable("no model server is listening")

    await episodes.record_many(_thread(DEPLOY_THREAD, "a", OLD) + _thread(DEPLOY_THREAD, "b", OLD))
    down = await episodes.consolidate(
        ACME, older_than=timedelta(days=1), summarizer=ModelSummarizer(FunctionModel(unavailable)), now=NOW,
        max_notes=1,
    )  # fmt: skip
    silent = await episodes.consolidate(
        ACME, older_than=timedelta(days=1), summarizer=ModelSummarizer(ScriptedModel(["  "])), now=NOW
    )

    assert down.methods == {"extractive": 1} and silent.methods == {"extractive": 1}
    assert {down.notes[0].thread, silent.notes[0].thread} == {"a", "b"}


async def test_secrets_in_old_episodes_never_reach_the_model_or_the_note(episodes: EpisodeStore) -> None:
    texts = ['The token was aws_secret = "AKIAIOSFODNN7EXAMPLE" in the env file.', "We rotated it the same day."]
    await episodes.record_many(_thread(texts, "leak", OLD))
    model = FunctionModel(lambda request: request.messages[-1].content)  # echoes what it was shown

    report = await episodes.consolidate(ACME, older_than=timedelta(days=1), summarizer=ModelSummarizer(model), now=NOW)

    assert "AKIAIOSFODNN7EXAMPLE" not in model.requests[0].messages[-1].content
    assert "AKIAIOSFODNN7EXAMPLE" not in report.notes[0].text


async def test_consolidation_stays_within_the_scope(episodes: EpisodeStore) -> None:
    await episodes.record_many(_thread(DEPLOY_THREAD, "x", OLD) + _thread(DEPLOY_THREAD, "x", OLD, tenant="globex"))

    report = await episodes.consolidate(ACME, older_than=timedelta(days=1), now=NOW)

    assert {n.tenant for n in report.notes} == {"acme"}
    globex = await episodes.recall("deploy", scope=RecallScope(tenant="globex"), k=10)
    assert globex and "note" not in {hit.episode.kind for hit in globex}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": timedelta(0)}, "positive age"),
        ({"older_than": timedelta(days=1), "batch_size": 1}, "at least 2"),
    ],
)
async def test_bad_consolidation_settings_are_usage_errors(
    episodes: EpisodeStore, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        await episodes.consolidate(ACME, **kwargs)


def test_the_extractive_summary_keeps_central_sentences_in_their_order_within_its_budget() -> None:
    summarizer = ExtractiveSummarizer(max_sentences=2, max_chars=200)
    text = summarizer.summarize_sync(_thread(DEPLOY_THREAD, "t", OLD))
    assert 0 < len(text) <= 200
    positions = [" ".join(DEPLOY_THREAD).index(sentence) for sentence in text.split(". ") if sentence]
    assert positions == sorted(positions)
    assert summarizer.summarize_sync([]) == ""


async def test_notes_whose_sources_were_consolidated_meanwhile_are_not_written(db_url: str) -> None:
    store = SyncEpisodeStore.open(db_url)
    try:
        old = store.record_many(_thread(DEPLOY_THREAD[:2], "t", OLD))
        [batch] = store.pending_consolidation(ACME, before=NOW, batch_size=10)
        first = Episode(tenant="acme", kind="note", text="first", metadata={"sources": batch})
        second = Episode(tenant="acme", kind="note", text="second", metadata={"sources": batch})

        written = store.record_notes([first, second])

        assert [n.text if n else None for n in written] == ["first", None]
        assert store.pending_consolidation(ACME, before=NOW, batch_size=10) == []
        assert {e.id for e in store.episodes_by_id([e.id for e in old])} == {e.id for e in old}
        assert store.count(ACME) == 3
        with pytest.raises(UsageError, match="sources"):
            store.record_notes([Episode(tenant="acme", kind="note", text="orphan")])
    finally:
        store.close()


async def test_the_memory_server_consolidates_the_principals_episodes(tmp_path: Path) -> None:
    memory = EpisodicMemory.open(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        await memory.episodes.record_many(_thread(DEPLOY_THREAD, "x", OLD) + _thread(DEPLOY_THREAD, "x", OLD, "globex"))
        async with Client(build_memory_server(memory, Principal(tenant="acme"))) as client:
            done = await client.call_tool("consolidate_memory", {"older_than_days": 7})
            bad = await client.call_tool("consolidate_memory", {"older_than_days": 0})
        globex_pending = memory.episodes.sync.pending_consolidation(
            RecallScope(tenant="globex"), before=NOW, batch_size=20
        )
    finally:
        memory.close()
    assert not done.is_error, done.content
    assert done.structured_content is not None
    assert done.structured_content["consolidated"] == 5
    assert done.structured_content["methods"] == {"extractive": 1}
    assert bad.is_error
    assert len(globex_pending) == 1


def test_on_postgresql_consolidation_marks_sources_and_skips_them_next_time() -> None:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set MCPHIVE_PG_BIN")
    import anyio

    with postgres_cluster() as url:
        store = SyncEpisodeStore.open(url)
        try:
            store.record_many(_thread(DEPLOY_THREAD, "x", OLD))

            async def twice() -> tuple[int, int]:
                episodes = EpisodeStore(store)
                first = await episodes.consolidate(ACME, older_than=timedelta(days=1), now=NOW)
                second = await episodes.consolidate(ACME, older_than=timedelta(days=1), now=NOW)
                return first.consolidated, second.consolidated

            counts = anyio.run(twice)
            hits = store.recall("disk alert on build servers", scope=ACME, k=10)
        finally:
            store.close()
    assert counts == (5, 0)
    assert "note" in {hit.episode.kind for hit in hits}
