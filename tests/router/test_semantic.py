"""The semantic router's calibrated head, on synthetic vectors and with the real MiniLM embedder."""

import numpy as np
import pytest

from mcphive.embeddings import get_embedder
from mcphive.errors import ConfigError
from mcphive.router._calibrate import CalibratedHead, expected_calibration_error, knn_scores
from mcphive.router.semantic import SemanticRouter

pytestmark = pytest.mark.anyio

EXAMPLES = {
    "docs": ["write docstrings for the module", "fix typos in the README", "document the CLI options"],
    "ops": ["the service is down", "error rate alert is firing", "summarize the application logs"],
}


def clusters(n_per_class: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors scattered around three orthogonal directions (with overlap when noisy)."""
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 16)
    x = np.vstack([c + noise * rng.standard_normal((n_per_class, 16)) for c in centers])
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(3), n_per_class)


@pytest.mark.parametrize("method", ["blend", "logreg", "knn", "centroid"])
def test_every_head_separates_clusters_and_returns_probabilities(method: str) -> None:
    x, y = clusters(40, 0.3, seed=1)
    q, truth = clusters(20, 0.3, seed=2)
    probs = CalibratedHead(method=method).fit(x, y).predict_proba(q)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(axis=1) == truth).mean() > 0.95


def test_calibration_keeps_confidence_close_to_accuracy_on_overlapping_classes() -> None:
    x, y = clusters(150, 0.9, seed=3)
    q, truth = clusters(300, 0.9, seed=4)
    head = CalibratedHead(method="logreg", l2=1e-5, folds=5).fit(x, y)
    probs = head.predict_proba(q)
    accuracy = (probs.argmax(axis=1) == truth).mean()
    assert 0.5 < accuracy < 0.99  # the classes really overlap, so confidence has something to track
    assert expected_calibration_error(probs, truth) < 0.08


def test_the_lexical_view_decides_when_the_embeddings_carry_no_signal() -> None:
    rng = np.random.default_rng(5)
    words = ["docs", "pipeline", "alert"]

    def uninformative(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
        x = rng.standard_normal((len(labels), 16))
        texts = [f"{words[c]} {' '.join(rng.choice(['the', 'a', 'fix', 'update', 'check'], 3))}" for c in labels]
        return x / np.linalg.norm(x, axis=1, keepdims=True), texts

    y, truth = np.repeat(np.arange(3), 30), np.repeat(np.arange(3), 20)
    (x, texts), (q, queries) = uninformative(y), uninformative(truth)
    embeddings_only = CalibratedHead(lexical=0.0).fit(x, y, texts).predict_proba(q, queries)
    with_words = CalibratedHead(lexical=1.0).fit(x, y, texts).predict_proba(q, queries)
    assert (embeddings_only.argmax(axis=1) == truth).mean() < 0.6
    assert (with_words.argmax(axis=1) == truth).mean() > 0.9
    assert np.allclose(with_words.sum(axis=1), 1.0)


def test_query_words_are_weighted_exactly_as_scikit_learn_would() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["fix the docs build", "docs: fix a typo in the guide", "bump the CI image", "alert: disk full on host"]
    x, y = clusters(4, 0.3, seed=7)
    x, y = x[: len(texts)], np.array([0, 0, 1, 2])
    head = CalibratedHead(lexical=1.0, folds=1).fit(x, y, texts)
    queries = ["docs docs docs typo", "the CI image build", "nothing known here", "Fix the DOCS build, fix it"]
    expected = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts).transform(queries) @ head._lw
    by_hand = np.vstack([head._word_logits(q) for q in queries])
    assert np.allclose(by_hand, expected + head._lb)


def test_a_head_with_a_lexical_view_needs_the_query_texts() -> None:
    x, y = clusters(10, 0.3, seed=6)
    head = CalibratedHead(lexical=1.0).fit(x, y, [f"example {i}" for i in range(len(y))])
    with pytest.raises(ValueError, match="pass the query texts"):
        head.predict_proba(x[:2])


def test_expected_calibration_error_is_zero_when_confidence_equals_accuracy() -> None:
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.array([1, 1, 1, 1])) == pytest.approx(0.75)


def test_knn_scores_average_the_k_most_similar_examples_of_each_class() -> None:
    sims = np.array([[0.9, 0.1, 0.5, 0.4, 0.8]])
    scores = knn_scores(sims, np.array([0, 0, 0, 1, 1]), n_classes=2, k=2)
    assert scores.tolist() == [[pytest.approx(0.7), pytest.approx(0.6)]]


async def test_scores_are_probabilities_over_the_agents_best_first() -> None:
    router = SemanticRouter(EXAMPLES, get_embedder())
    candidates = await router.scores("add docstrings to the helpers")
    assert [c.agent for c in candidates] == ["docs", "ops"]
    assert sum(c.score for c in candidates) == pytest.approx(1.0, abs=1e-3)


async def test_the_word_view_can_be_turned_off() -> None:
    router = SemanticRouter(EXAMPLES, get_embedder(), lexical=0.0)
    assert (await router.scores("add docstrings to the helpers"))[0].agent == "docs"


async def test_a_correction_changes_the_next_decision() -> None:
    router = SemanticRouter(EXAMPLES, get_embedder())
    text = "the README badge shows the service status as down"
    first = (await router.scores(text))[0].agent
    other = "docs" if first == "ops" else "ops"
    for variant in ("the README badge shows the service as down", "README status badge says down", text):
        await router.add_example(other, variant)
    assert (await router.scores(text))[0].agent == other


async def test_text_far_from_every_example_is_unfamiliar() -> None:
    router = SemanticRouter(EXAMPLES, get_embedder())
    far = await router.assess("what is a good recipe for banana bread")
    near = await router.assess("the api service is down and the alert keeps firing")
    assert not far.familiar and far.nearest_similarity < router.min_similarity
    assert near.familiar and near.candidates[0].agent == "ops"


async def test_a_router_without_examples_proposes_nobody() -> None:
    assessment = await SemanticRouter({"docs": []}, get_embedder()).assess("anything")
    assert assessment.candidates == [] and not assessment.familiar


def test_an_unknown_head_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="unknown semantic router method 'svm'; use one of"):
        SemanticRouter(EXAMPLES, get_embedder(), method="svm")
