"""The document store: hybrid search where each ranking matters, idempotent writes, persistence, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcphive.embeddings import Embedder
from mcphive.errors import StoreError, UsageError
from mcphive.lexical import reciprocal_rank_fusion, tokenize
from mcphive.rag import Chunk, DocumentStore

TEXTS = {
    "quota.md": "Quota errors happen when a workspace exceeds its storage allowance. Users see a warning and uploads "
    "pause until space is freed.",
    "limits.md": "Rate limits: too many requests in one minute return an error, and the client should retry with "
    "exponential backoff.",
    "usage.py": "def check_usage(account):\n"
    "    if account.used_bytes > account.limit_bytes:\n"
    '        raise Refused("E7731")\n'
    "    return account.used_bytes",
    "password.md": "If you forgot your password, open the account page and choose reset password. A one-time link "
    "arrives by e-mail.",
    "billing.md": "Invoices are issued on the first day of every month and paid by card.",
    "deletion.md": "Removing a workspace erases its files, its history and its members permanently.",
}


def make_chunks() -> list[Chunk]:
    return [
        Chunk(text=text, source=source, start_line=1, end_line=text.count("\n") + 1, kind="text")
        for source, text in TEXTS.items()
    ]


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> DocumentStore:
    store = DocumentStore(tmp_path / "db", embedder)
    store.add(make_chunks())
    return store


def test_a_paraphrased_question_is_found_by_meaning_alone(store: DocumentStore) -> None:
    hits = store.search("I cannot remember how to sign in", k=3)
    assert hits[0].source == "password.md"
    assert hits[0].vector_rank == 1
    assert hits[0].bm25_rank is None  # no shared word: BM25 alone would have missed it


def test_a_rare_identifier_is_ranked_first_thanks_to_bm25(store: DocumentStore) -> None:
    hits = store.search("what does error E7731 mean", k=3)
    assert hits[0].source == "usage.py"
    assert hits[0].bm25_rank == 1
    # MiniLM prefers the prose about quota errors (cosine 0.33 vs 0.24), so vectors alone would rank it lower.
    assert hits[0].vector_rank is not None and hits[0].vector_rank > 1


def test_hits_carry_their_source_lines_and_descending_fused_scores(store: DocumentStore) -> None:
    hits = store.search("E7731", k=4)
    assert len(hits) == 4
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    top = hits[0]
    assert (top.source, top.start_line, top.end_line) == ("usage.py", 1, 4)
    assert top.text == TEXTS["usage.py"]


def test_k_bounds_the_number_of_hits(store: DocumentStore) -> None:
    assert len(store.search("workspace", k=2)) == 2
    assert len(store.search("workspace", k=50)) == len(TEXTS)


def test_adding_the_same_chunks_again_stores_nothing_new(store: DocumentStore) -> None:
    assert store.count() == len(TEXTS)
    assert store.add(make_chunks()) == 0
    assert store.count() == len(TEXTS)


def test_the_store_persists_across_instances_on_the_same_path(
    tmp_path: Path, store: DocumentStore, embedder: Embedder
) -> None:
    reopened = DocumentStore(tmp_path / "db", embedder)
    assert reopened.count() == len(TEXTS)
    assert reopened.search("E7731", k=1)[0].source == "usage.py"


def test_the_store_is_on_disk_for_another_process(tmp_path: Path, store: DocumentStore) -> None:
    # A fresh process shares no chroma client cache with this one, so it can only read what is on disk.
    code = (
        "import sys; from pathlib import Path; from mcphive.rag import DocumentStore; "
        "s = DocumentStore(Path(sys.argv[1])); print(s.count(), ','.join(s.sources()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "db")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(TEXTS)), ",".join(sorted(TEXTS))]


def test_bm25_sees_chunks_written_by_another_store_instance(
    tmp_path: Path, store: DocumentStore, embedder: Embedder
) -> None:
    reader = DocumentStore(tmp_path / "db", embedder, refresh_s=0)  # checks for other writers on every search
    reader.search("warm the bm25 index", k=1)
    writer = DocumentStore(tmp_path / "db", embedder)
    writer.add(
        [
            Chunk(
                text="The flag QX_NEW_TOGGLE enables beta mode.", source="new.md", start_line=1, end_line=1, kind="text"
            )
        ]
    )
    hit = reader.search("QX_NEW_TOGGLE", k=1)[0]
    assert (hit.source, hit.bm25_rank) == ("new.md", 1)


def test_remove_source_deletes_only_that_sources_chunks(store: DocumentStore) -> None:
    assert store.remove_source("billing.md") == 1
    assert "billing.md" not in store.sources()
    assert store.count() == len(TEXTS) - 1


def test_searching_an_empty_store_returns_no_hits(tmp_path: Path, embedder: Embedder) -> None:
    assert DocumentStore(tmp_path / "empty", embedder).search("anything") == []


@pytest.mark.parametrize(
    ("query", "k", "message"), [("", 5, "empty search query"), ("  ", 5, "empty"), ("x", 0, "k=0")]
)
def test_bad_search_arguments_are_usage_errors(store: DocumentStore, query: str, k: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        store.search(query, k=k)


def test_a_store_path_that_is_a_file_is_a_store_error(tmp_path: Path, embedder: Embedder) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(StoreError, match="not-a-folder"):
        DocumentStore(blocker, embedder)


def test_tokenize_keeps_whole_identifiers_and_their_parts_without_filler_words() -> None:
    assert tokenize("When does parse_HTTPHeader fail?") == ["parse_httpheader", "parse", "http", "header", "fail"]


def test_reciprocal_rank_fusion_rewards_agreement_between_rankings() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["d", "b"]], k=60)
    assert max(fused, key=fused.__getitem__) == "b"  # second in both beats first in one
    assert fused["b"] == pytest.approx(2 / 62)
    assert fused["a"] == fused["d"] == pytest.approx(1 / 61)


def test_a_store_larger_than_one_read_page_still_indexes_every_chunk(
    store: DocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mcphive.rag.store as store_module

    # SQLite caps the variables of one statement; the BM25 index reads the collection in pages.
    monkeypatch.setattr(store_module, "_READ_PAGE", 2)
    assert store.count() > 2
    hits = store.search("check_usage account", k=3)
    assert hits and hits[0].source == "usage.py"


def test_metadata_filters_restrict_both_rankings(store: DocumentStore) -> None:
    hits = store.search("workspace storage errors", k=5, where={"source": "deletion.md"})
    assert [hit.source for hit in hits] == ["deletion.md"]
    assert hits[0].vector_rank == 1 and hits[0].bm25_rank == 1
    assert store.search("workspace", k=5, where={"source": "nowhere.md"}) == []


def test_new_collections_get_the_configured_hnsw_index(tmp_path: Path, embedder: Embedder) -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from mcphive.rag import HnswConfig

    with DocumentStore(tmp_path / "db", embedder, hnsw=HnswConfig(max_neighbors=24, ef_construction=64)):
        pass
    with DocumentStore(tmp_path / "db", embedder, hnsw=HnswConfig(ef_search=77)):
        pass  # a later store changes the search list; the build parameters stay
    client = chromadb.PersistentClient(path=str(tmp_path / "db"), settings=ChromaSettings(anonymized_telemetry=False))
    hnsw = client.get_collection("docs").configuration_json["hnsw"]
    assert (hnsw["max_neighbors"], hnsw["ef_construction"], hnsw["ef_search"]) == (24, 64, 77)
    client.close()


def test_the_store_is_built_from_settings(tmp_path: Path, embedder: Embedder) -> None:
    from mcphive.settings import Settings

    settings = Settings(data_dir=tmp_path, rag_hnsw_ef_search=99)
    with DocumentStore.from_settings(settings, embedder) as store:
        assert store.path == tmp_path / "rag" and store.url is None and store.hnsw.ef_search == 99


def test_a_malformed_chroma_url_is_a_config_error(embedder: Embedder) -> None:
    from mcphive.errors import ConfigError

    with pytest.raises(ConfigError, match="not an http"):
        DocumentStore(url="localhost:8000", embedder=embedder)
    with pytest.raises(UsageError, match=r"exactly one of path= .* or url="):
        DocumentStore(embedder=embedder)
