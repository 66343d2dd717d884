"""Episodes: recording, scoped hybrid recall, tenant isolation, secret redaction and the schema."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from _pg import pg_bin_dir, postgres_cluster
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from mcphive.errors import UsageError
from mcphive.memory._engine import MIGRATIONS_DIR
from mcphive.memory._recall_rank import ScopeIndex
from mcphive.memory._tables import Base
from mcphive.memory.episodes import Episode, EpisodeStore, RecallHit, RecallScope, RecallWeights, SyncEpisodeStore

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
# Relevance only: these tests are about what matches, not about how old or important it is.
PLAIN = RecallWeights(recency=0.0, importance=0.0)


@pytest.fixture
def store(db_url: str) -> Iterator[SyncEpisodeStore]:
    opened = SyncEpisodeStore.open(db_url)
    yield opened
    opened.close()


def _texts(hits: list[RecallHit]) -> list[str]:
    return [hit.episode.text for hit in hits]


def test_a_recorded_episode_is_recalled_with_all_its_fields(store: SyncEpisodeStore) -> None:
    wanted = Episode(
        tenant="acme",
        workspace="/srv/app",
        agent="coder",
        thread="task-1",
        kind="outcome",
        text="The deploy failed because the disk of the build server was full.",
        created_at=T0,
        importance=0.9,
        outcome="failed",
        metadata={"step": 3},
    )
    store.record_many(
        [
            wanted,
            Episode(tenant="acme", thread="task-2", text="Lunch was pasta with tomato sauce.", created_at=T0),
            Episode(tenant="acme", thread="task-3", text="The quarterly report went to the board.", created_at=T0),
        ]
    )

    hits = store.recall("why did the deploy fail?", scope=RecallScope(tenant="acme"), k=2)

    assert hits[0].episode == wanted
    assert hits[0].lexical_rank == 1
    assert hits[0].dense_rank == 1
    assert store.count(RecallScope(tenant="acme")) == 3


def test_recall_never_returns_another_tenants_episodes(store: SyncEpisodeStore) -> None:
    store.record(Episode(tenant="acme", text="The launch code for the demo is in the blue folder."))
    store.record(Episode(tenant="globex", text="The launch code for the demo is in the red folder."))

    acme = store.recall("where is the launch code?", scope=RecallScope(tenant="acme"))
    nobody = store.recall("where is the launch code?", scope=RecallScope(tenant="initech"))

    assert _texts(acme) == ["The launch code for the demo is in the blue folder."]
    assert nobody == []


def test_scope_and_filters_narrow_recall_by_agent_thread_time_and_outcome(store: SyncEpisodeStore) -> None:
    rows = [
        ("coder", "t1", 0, "succeeded", "Tests for the parser passed after fixing the tokenizer."),
        ("coder", "t2", 1, "failed", "Tests for the parser failed on unicode input."),
        ("reviewer", "t1", 2, "succeeded", "Review of the parser tests approved the change."),
        ("reviewer", "t3", 3, "failed", "Review of the parser tests found missing edge cases."),
    ]
    store.record_many(
        [
            Episode(
                tenant="acme", agent=agent, thread=thread, created_at=T0 + timedelta(days=day), outcome=outcome, text=t
            )
            for agent, thread, day, outcome, t in rows
        ]
    )
    acme = RecallScope(tenant="acme")

    def agents_threads(**filters: object) -> set[tuple[str, str]]:
        hits = store.recall("parser tests", k=10, weights=PLAIN, **filters)  # type: ignore[arg-type]
        return {(hit.episode.agent, hit.episode.thread) for hit in hits}

    assert agents_threads(scope=RecallScope(tenant="acme", agent="coder")) == {("coder", "t1"), ("coder", "t2")}
    assert agents_threads(scope=RecallScope(tenant="acme", thread="t1")) == {("coder", "t1"), ("reviewer", "t1")}
    assert agents_threads(scope=acme, agent="reviewer") == {("reviewer", "t1"), ("reviewer", "t3")}
    assert agents_threads(scope=acme, outcome="failed") == {("coder", "t2"), ("reviewer", "t3")}
    window = {"since": T0 + timedelta(days=1), "until": T0 + timedelta(days=3)}
    assert agents_threads(scope=acme, **window) == {("coder", "t2"), ("reviewer", "t1")}


def test_fusion_finds_what_only_bm25_finds_and_what_only_embeddings_find(store: SyncEpisodeStore) -> None:
    identifier = "After a long talk about flaky integration tests and the release calendar, we also dropped QX48213."
    paraphrase = "My car broke down on the highway and the tow truck took two hours."
    distractors = [
        "Closed QX48231 as a duplicate of the login bug.",
        "Closed QX42813 as a duplicate after triage.",
        "Closed QX84213 as a duplicate, see the parent ticket.",
        "Closed QX48123 as a duplicate of the crash report.",
        "The vehicle inspection is booked for next Tuesday.",
        "Lunch was pasta with tomato sauce.",
    ]
    # One thread per episode: neither windows nor diversity change anything here, only the fusion.
    store.record_many(
        [Episode(tenant="t", thread=f"th{n}", text=t) for n, t in enumerate([identifier, paraphrase, *distractors])]
    )
    queries = {"closed duplicate QX48213": identifier, "automobile breakdown on the motorway": paraphrase}
    methods = {
        "bm25": PLAIN.model_copy(update={"dense": 0.0}),
        "dense": PLAIN.model_copy(update={"lexical": 0.0, "window": 0.0}),
        "fused": PLAIN,
    }

    found = {
        name: {
            query
            for query, wanted in queries.items()
            if wanted in _texts(store.recall(query, scope=RecallScope(tenant="t"), k=2, weights=weights))
        }
        for name, weights in methods.items()
    }

    assert found == {
        "bm25": {"closed duplicate QX48213"},
        "dense": {"automobile breakdown on the motorway"},
        "fused": set(queries),
    }


def test_the_window_index_finds_the_answer_turn_that_shares_no_word_with_the_question(store: SyncEpisodeStore) -> None:
    conversation = [
        "Mel: What did you paint last weekend?",
        "Caroline: A sunrise over the lake, in oils.",
        "Mel: Lovely. How is the new job going?",
        "Caroline: Busy, the onboarding takes forever.",
    ]
    store.record_many([Episode(tenant="t", thread="c1", text=t, created_at=T0) for t in conversation])
    without_windows = PLAIN.model_copy(update={"window": 0.0, "dense": 0.0, "diversity": 0.0})
    with_windows = PLAIN.model_copy(update={"dense": 0.0, "diversity": 0.0})

    plain = store.recall("painting weekend", scope=RecallScope(tenant="t"), k=2, weights=without_windows)
    windowed = store.recall("painting weekend", scope=RecallScope(tenant="t"), k=2, weights=with_windows)

    assert conversation[1] not in _texts(plain)
    assert conversation[1] in _texts(windowed)


def test_diversity_spreads_hits_over_distinct_moments_of_a_thread(store: SyncEpisodeStore) -> None:
    same_moment = [f"Garden note {n}: the tomatoes need water." for n in range(3)]
    later = "Garden note: the tomatoes were harvested."
    store.record_many([Episode(tenant="t", thread="c1", text=t, created_at=T0) for t in same_moment])
    store.record(Episode(tenant="t", thread="c1", text=later, created_at=T0 + timedelta(days=7)))
    focused = PLAIN.model_copy(update={"diversity": 0.0})
    diverse = PLAIN.model_copy(update={"diversity": 1.0})

    assert later not in _texts(store.recall("tomatoes need water", scope=RecallScope(tenant="t"), k=2, weights=focused))
    assert later in _texts(store.recall("tomatoes need water", scope=RecallScope(tenant="t"), k=2, weights=diverse))


def test_tail_diversity_keeps_the_head_by_score_and_spreads_the_tail(store: SyncEpisodeStore) -> None:
    same_moment = [f"Garden note {n}: the tomatoes need water." for n in range(3)]
    later = "Garden note: the tomatoes were harvested."
    store.record_many([Episode(tenant="t", thread="c1", text=t, created_at=T0) for t in same_moment])
    store.record(Episode(tenant="t", thread="c1", text=later, created_at=T0 + timedelta(days=7)))
    scope = RecallScope(tenant="t")

    def recall(**update: float) -> list[str]:
        weights = PLAIN.model_copy(update={"diversity": 0.0, **update})
        return _texts(store.recall("tomatoes need water", scope=scope, k=3, weights=weights))

    assert later not in recall()
    assert recall(diversity_head=0, tail_diversity=1.0).index(later) == 1
    headed = recall(diversity_head=2, tail_diversity=1.0)
    assert headed[:2] == recall()[:2]
    assert headed[2] == later
    assert later not in recall(diversity_head=3, tail_diversity=1.0)


def test_a_moment_that_matches_the_query_as_a_whole_lifts_its_episodes(store: SyncEpisodeStore) -> None:
    vague = "I went there yesterday."
    taxes = ["The tax forms are due in April.", vague, "I filed the receipts for the accountant."]
    beach = ["The waves at the beach were huge.", vague, "Surfing lessons start at nine."]
    store.record_many([Episode(tenant="t", thread="c1", text=t, created_at=T0) for t in taxes])
    store.record_many([Episode(tenant="t", thread="c1", text=t, created_at=T0 + timedelta(days=7)) for t in beach])
    scope = RecallScope(tenant="t")
    flat = PLAIN.model_copy(update={"window": 0.0, "dense_window": 0.0, "diversity": 0.0})

    def lift(weights: RecallWeights) -> float:
        """How far the beach moment's vague turn scores above the tax moment's."""
        hits = store.recall("Where did you go surfing at the beach?", scope=scope, k=6, weights=weights)
        score = {hit.episode.created_at: hit.score for hit in hits if hit.episode.text == vague}
        return score[T0 + timedelta(days=7)] - score[T0]

    assert lift(flat.model_copy(update={"moment_dense": 5.0})) > lift(flat) + 0.04


def test_naming_an_agent_in_the_query_favours_that_agents_episodes(store: SyncEpisodeStore) -> None:
    store.record_many(
        [
            Episode(tenant="t", thread="c1", agent="Melanie", text="I painted a sunrise last week.", created_at=T0),
            Episode(tenant="t", thread="c2", agent="Caroline", text="I painted a sunrise too.", created_at=T0),
        ]
    )
    scope = RecallScope(tenant="t")
    aware = PLAIN.model_copy(update={"named_agent": 1.0})

    first = [
        store.recall(f"What did {name} paint?", scope=scope, k=1, weights=aware)[0].episode.agent
        for name in ("Caroline", "Melanie")
    ]

    assert first == ["Caroline", "Melanie"]


def test_planted_secrets_are_redacted_before_storage_and_never_recalled(store: SyncEpisodeStore) -> None:
    # Built from pieces so that secret scanners of this repository do not flag the test itself.
    aws_key = "AKIA" + "Z3MHJQ7T4XWNV2KD"
    password = "hunter2-" + "correct-horse"
    episode = Episode(
        tenant="acme",
        text=f'Configured the deploy.\naws_access_key_id {aws_key}\npassword = "{password}"\nThen it ran fine.',
        metadata={"note": f"the key was {aws_key}"},
    )

    stored = store.record(episode)
    hits = store.recall("deploy configuration key password", scope=RecallScope(tenant="acme"))
    with store.engine.connect() as connection:
        row = connection.execute(text("SELECT text, metadata FROM episodes")).one()

    dumped = " ".join([stored.model_dump_json(), *(hit.model_dump_json() for hit in hits), str(row)])
    assert aws_key not in dumped
    assert password not in dumped
    assert "[REDACTED:AWS Access Key]" in row.text
    assert "[REDACTED:Secret Keyword]" in row.text
    assert "Then it ran fine." in row.text
    assert stored.metadata["redacted"] == ["AWS Access Key", "Secret Keyword"]


def test_a_write_from_another_store_on_the_same_database_is_seen_by_the_next_recall(db_url: str) -> None:
    first, second = SyncEpisodeStore.open(db_url), SyncEpisodeStore.open(db_url)
    try:
        first.record(Episode(tenant="acme", text="The staging database moved to a new host."))
        assert len(first.recall("database host", scope=RecallScope(tenant="acme"))) == 1
        second.record(Episode(tenant="acme", text="The production database moved to a new host too."))

        assert len(first.recall("database host", scope=RecallScope(tenant="acme"))) == 2
    finally:
        first.close()
        second.close()


def test_recording_an_episode_id_twice_is_a_usage_error(store: SyncEpisodeStore) -> None:
    episode = Episode(id="e1", tenant="acme", text="once")
    store.record(episode)

    with pytest.raises(UsageError, match="already recorded"):
        store.record(episode)


def test_an_empty_query_or_a_non_positive_k_is_a_usage_error(store: SyncEpisodeStore) -> None:
    with pytest.raises(UsageError, match="query is empty"):
        store.recall("  ", scope=RecallScope(tenant="acme"))
    with pytest.raises(UsageError, match="k must be at least 1"):
        store.recall("x", scope=RecallScope(tenant="acme"), k=0)


@pytest.mark.anyio
async def test_the_async_store_records_and_recalls_off_the_event_loop(db_url: str) -> None:
    async with EpisodeStore.open(db_url) as store:
        await store.record_many([Episode(tenant="acme", thread="t", text="The cache hit rate dropped to 40%.")])
        hits = await store.recall("cache hit rate", scope=RecallScope(tenant="acme", thread="t"), k=3)
        count = await store.count(RecallScope(tenant="acme"))

    assert _texts(hits) == ["The cache hit rate dropped to 40%."]
    assert count == 1


def test_the_migrated_schema_with_episodes_equals_the_orm_metadata(store: SyncEpisodeStore) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
        revision = context.get_current_revision()

    assert diffs == []
    assert "episodes" in Base.metadata.tables
    assert revision == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_revision("0002_episodes").down_revision == "0001"


def test_on_postgresql_the_schema_matches_and_recall_stays_within_the_tenant() -> None:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set MCPHIVE_PG_BIN")
    with postgres_cluster() as url:
        store = SyncEpisodeStore.open(url)
        try:
            with store.engine.connect() as connection:
                diffs = compare_metadata(
                    MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
                )
            store.record_many(
                [
                    Episode(tenant="acme", thread="t", text="The invoice run finished at 3am.", created_at=T0),
                    Episode(tenant="globex", thread="t", text="The invoice run finished at 4am.", created_at=T0),
                ]
            )
            hits = store.recall("when did the invoice run finish?", scope=RecallScope(tenant="acme"))
        finally:
            store.close()

    assert diffs == []
    assert [(hit.episode.text, hit.episode.created_at) for hit in hits] == [("The invoice run finished at 3am.", T0)]


def test_a_batch_mixing_clean_and_secret_bearing_episodes_redacts_only_the_secrets(store: SyncEpisodeStore) -> None:
    clean = Episode(tenant="t", text="the deploy finished at noon")
    leaky = Episode(tenant="t", text='aws_key = "AKIAIOSFODNN7EXAMPLE" was pasted in chat')
    stored = store.record_many([clean, leaky])
    assert stored[0].text == "the deploy finished at noon"
    assert "AKIAIOSFODNN7EXAMPLE" not in stored[1].text
    recalled = store.recall("aws key pasted", scope=RecallScope(tenant="t"), k=2)
    assert all("AKIAIOSFODNN7EXAMPLE" not in hit.episode.text for hit in recalled)


def _index(texts: list[str], threads: list[str], minutes: list[float], vectors: list[list[float]]) -> ScopeIndex:
    array = np.array(vectors, dtype=np.float32)
    return ScopeIndex(
        texts=texts,
        vectors=array / np.linalg.norm(array, axis=1, keepdims=True),
        created=np.array([T0.timestamp() + 60 * m for m in minutes]),
        importance=np.full(len(texts), 0.5),
        threads=threads,
        agents=[""] * len(texts),
    )


def test_moments_split_on_thread_changes_and_time_gaps() -> None:
    index = _index(["a", "b", "c", "d", "e"], ["t", "t", "t", "u", "u"], [0, 30, 200, 200, 210], [[1, 0]] * 5)
    assert index.moments(60.0).tolist() == [0, 0, 1, 2, 2]
    assert index.moments(1000.0).tolist() == [0, 0, 0, 1, 1]


def test_the_moment_channel_favours_matches_from_the_moment_that_matches_best() -> None:
    texts = [
        "The build broke again.",  # moment 0: only this line mentions the build
        "Lunch was pasta.",
        "The build broke on the runner.",  # moment 1: the whole moment is about the runner and its disk
        "The runner disk was full.",
        "We cleaned the runner disk.",
    ]
    index = _index(texts, ["t"] * 5, [0, 1, 600, 601, 602], [[1, 0]] * 5)
    plain = RecallWeights(recency=0, importance=0, dense=0, window=0, diversity=0)
    vector, mask = np.array([1, 0], dtype=np.float32), np.ones(5, dtype=bool)

    without = index.rank("build broke disk", vector, mask, plain, k=2, now=0)
    with_moment = index.rank("build broke disk", vector, mask, plain.model_copy(update={"moment": 4.0}), k=2, now=0)

    assert without[0].row == 0
    assert with_moment[0].row == 2


def test_the_window_embedding_channel_finds_an_episode_through_its_neighbours() -> None:
    # Row 1 points away from the query, but both its neighbours point at it; the window average does too.
    index = _index(["x", "y", "z", "w"], ["t", "t", "t", "u"], [0, 1, 2, 0], [[1, 0.1], [0, 1], [1, -0.1], [0.6, 0.8]])
    query = np.array([1, 0], dtype=np.float32)
    mask = np.ones(4, dtype=bool)
    only_window = RecallWeights(recency=0, importance=0, lexical=0, window=0, dense=0, dense_window=1.0, diversity=0)

    ranked = [hit.row for hit in index.rank("q", query, mask, only_window, k=4, now=0)]

    assert ranked.index(1) < ranked.index(3)
    assert np.allclose(np.linalg.norm(index.window_vectors(1), axis=1), 1.0)


def _mixed_batch() -> list[Episode]:
    """Forty episodes of two tenants: plain turns, credentials in text and metadata, a JSON tool result."""
    aws_key = "AKIA" + "Z3MHJQ7T4XWNV2KD"
    password = "hunter2-" + "correct-horse"
    episodes = [
        Episode(
            id=f"e{n}",
            tenant="acme" if n % 4 else "globex",
            thread=f"t{n % 3}",
            agent=("ops", "code")[n % 2],
            kind="turn",
            text=f"Turn {n}: the nightly invoice run moved to host {n % 5} after the disk filled up.",
            created_at=T0 + timedelta(minutes=n),
            importance=n / 40,
            outcome=("", "failed", "succeeded")[n % 3],
            metadata={"speaker": f"user{n % 2}", "tags": ["billing", f"host{n % 5}"]},
        )
        for n in range(36)
    ]
    episodes += [
        Episode(id="k1", tenant="acme", thread="t0", text=f"The deploy used aws_access_key_id {aws_key} today."),
        Episode(id="k2", tenant="acme", thread="t1", text="the invoice run failed", metadata={"env": f"key {aws_key}"}),
        Episode(id="k3", tenant="acme", thread="t2", text=f'{{"stdout": "password = \\"{password}\\""}}'),
        Episode(id="k4", tenant="globex", thread="t0", text=f'Rotated it: password = "{password}" for the invoice db'),
    ]
    return [episode.model_copy(update={"created_at": T0 + timedelta(minutes=n)}) for n, episode in enumerate(episodes)]


def _stored_rows(store: SyncEpisodeStore) -> list[tuple[object, ...]]:
    with store.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT id, tenant, workspace, agent, thread, kind, text, created_at, importance, outcome, "
                    "metadata, embedding, consolidated_in FROM episodes ORDER BY seq"
                )
            )
        ]


def _record_one_by_one_then_as_a_batch(url: str) -> None:
    store = SyncEpisodeStore.open(url)
    try:
        episodes = _mixed_batch()
        queries = [("acme", "invoice run disk host"), ("globex", "invoice db password"), ("acme", "deploy key")]
        single = [store.record(episode) for episode in episodes]
        single_rows = _stored_rows(store)
        single_hits = [store.recall(q, scope=RecallScope(tenant=t), k=5, weights=PLAIN) for t, q in queries]
        with store.engine.begin() as connection:
            connection.execute(text("DELETE FROM episodes"))
        batch = store.record_many(episodes)
        batch_rows = _stored_rows(store)
        batch_hits = [store.recall(q, scope=RecallScope(tenant=t), k=5, weights=PLAIN) for t, q in queries]
    finally:
        store.close()

    assert batch == single
    assert len(batch_rows) == len(episodes)
    # Embeddings of one text alone and in a batch may differ in the last float bits; everything else is equal.
    assert [row[:11] + row[12:] for row in batch_rows] == [row[:11] + row[12:] for row in single_rows]
    for mine, theirs in zip(batch_rows, single_rows, strict=True):
        assert np.allclose(np.frombuffer(mine[11], "<f4"), np.frombuffer(theirs[11], "<f4"), atol=1e-5)
    stored_text = " ".join(str(row) for row in batch_rows)
    assert "Z3MHJQ7T4XWNV2KD" not in stored_text
    assert "correct-horse" not in stored_text
    assert [[hit.episode.id for hit in hits] for hits in batch_hits] == [
        [hit.episode.id for hit in hits] for hits in single_hits
    ]
    assert all(
        hit.episode.tenant == tenant for (tenant, _), hits in zip(queries, batch_hits, strict=True) for hit in hits
    )


def test_record_many_stores_the_same_rows_and_recalls_the_same_as_record_one_by_one(db_url: str) -> None:
    _record_one_by_one_then_as_a_batch(db_url)


def test_on_postgresql_the_copied_batch_equals_the_rows_recorded_one_by_one() -> None:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set MCPHIVE_PG_BIN")
    with postgres_cluster() as url:
        _record_one_by_one_then_as_a_batch(url)


def test_terms_by_memoised_words_equal_the_shared_tokenizer_then_stemming() -> None:
    from mcphive.lexical import tokenize
    from mcphive.memory import _recall_lexical

    texts = [
        "Melanie painted a sunset; parse_HTTPHeader_v2 failed with E7731 at 3am.",
        "naïve café résumé — über-fast déjà vu, x86_64 getHTTPResponseCode()",
        "The runners were running, ran and runs: THE END of the Running_Total.",
        "",
    ]
    stemmer = _recall_lexical._STEMMER
    for sample in texts:
        tokens = tokenize(sample)
        expected = list(stemmer.stemWords(tokens)) if stemmer is not None else tokens
        assert _recall_lexical.terms(sample) == expected
    joined = [term for sample in texts for term in _recall_lexical.terms(sample)]
    assert _recall_lexical.terms(" ".join(texts)) == joined
