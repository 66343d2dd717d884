"""The numeric core of the semantic router: a softmax head over embeddings, calibrated.

Everything here is synchronous numpy/scipy on small matrices (a few thousand rows of 384
floats at most for the agents' examples); the async router calls it from a worker thread.

The head blends views of the same examples: a multinomial logistic regression (learns which
directions of the embedding space separate the agents), the k-nearest-neighbour mean
similarity (robust when an agent has only a handful of examples) and, when ``lexical`` > 0, a
logistic regression over TF-IDF word unigrams and bigrams of the example texts (scikit-learn's
vectoriser): the words a sentence embedding blurs — "docs", "CI", a tool's name — count on their
own. The blended logits are divided by a temperature fitted on predictions for examples the head
did not train on, so a reported probability of 0.8 is right about 80% of the time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Array = npt.NDArray[np.float64]
    Labels = npt.NDArray[np.int64]

__all__ = ["CalibratedHead", "expected_calibration_error", "knn_scores"]

# Scale of the kNN similarities inside the blended logits: cosine similarities live in [-1, 1], the
# regression's logits span tens, so without it the neighbours would never move a decision.
_KNN_SCALE = 20.0


def knn_scores(sims: Array, labels: Labels, n_classes: int, k: int) -> Array:
    """Per class, the mean of the ``k`` highest similarities (rows: queries, columns: examples).

    Args:
        sims: query-by-example cosine similarities.
        labels: class index of each example (column).
        n_classes: number of classes.
        k: neighbours averaged per class (fewer when a class has fewer examples).

    Returns:
        A query-by-class matrix.
    """
    import numpy as np

    out = np.empty((sims.shape[0], n_classes))
    for c in range(n_classes):
        own = sims[:, labels == c]
        kk = min(k, own.shape[1])
        top = np.partition(own, own.shape[1] - kk, axis=1)[:, own.shape[1] - kk :]
        out[:, c] = top.mean(axis=1)
    return out


def _softmax(z: Array) -> Array:
    import numpy as np

    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def _fit_softmax(x: Array, y: Labels, n_classes: int, l2: float) -> tuple[Array, Array]:
    """Multinomial logistic regression by L-BFGS; returns (weights, bias)."""
    import numpy as np
    from scipy.optimize import minimize

    n, d = x.shape
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0

    def loss(flat: Array) -> tuple[float, Array]:
        w, b = flat[: d * n_classes].reshape(d, n_classes), flat[d * n_classes :]
        p = _softmax(x @ w + b)
        nll = -float(np.log(np.clip(p[np.arange(n), y], 1e-12, None)).mean())
        g = (p - onehot) / n
        grad_w = x.T @ g + l2 * w
        return nll + 0.5 * l2 * float((w * w).sum()), np.concatenate([grad_w.ravel(), g.sum(axis=0)])

    start = np.zeros(d * n_classes + n_classes)
    res = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 300})
    return res.x[: d * n_classes].reshape(d, n_classes), res.x[d * n_classes :]


def _fit_temperature(logits: Array, y: Labels) -> float:
    """The temperature that minimises the negative log-likelihood of held-out logits."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = _softmax(logits / np.exp(log_t))
        return -float(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    res = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
    return float(np.exp(res.x))


def expected_calibration_error(probs: Array, y: Labels, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    import numpy as np

    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs(float(correct[mask].mean()) - float(conf[mask].mean()))
    return total


def _holdout_folds(y: Labels, folds: int) -> list[Labels]:
    """Stratified fold assignment: the i-th example of each class goes to fold ``i % folds``."""
    import numpy as np

    fold = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        fold[idx] = np.arange(len(idx)) % folds
    return [np.flatnonzero(fold == f) for f in range(folds)]


@dataclass
class CalibratedHead:
    """Logistic regression + kNN blend over unit embeddings, temperature-scaled.

    Args:
        method: ``"blend"`` (regression + kNN), ``"logreg"``, ``"knn"`` (mean of the k nearest) or
            ``"centroid"`` (similarity to each class's mean embedding).
        k: neighbours averaged per class for the kNN part.
        l2: L2 penalty of the regression (on the mean loss).
        folds: held-out folds for fitting the temperature; 1 means a single 20% slice.
        lexical: weight of the TF-IDF regression's logits in the blend (0: embeddings only). A head
            fitted with it needs the query texts beside their embeddings.
    """

    method: str = "blend"
    k: int = 3
    l2: float = 1e-4
    folds: int = 5
    lexical: float = 0.0
    temperature: float = 1.0

    def fit(self, x: Array, y: Labels, texts: Sequence[str] = ()) -> CalibratedHead:
        """Fit on unit embeddings ``x`` with class indices ``y``; calibrates on held-out predictions.

        ``texts`` (the examples themselves, row for row) feed the lexical view when ``lexical`` > 0.
        """
        import numpy as np

        lex = None  # the examples' TF-IDF rows, when the head has a lexical view
        self._analyzer: Callable[[str], list[str]] | None = None
        if self.lexical > 0 and len(texts):
            from sklearn.feature_extraction.text import TfidfVectorizer

            vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
            lex = vectorizer.fit_transform(texts)
            # Queries are weighted by hand from these (``_word_logits``): scikit-learn's transform costs ~0.4 ms a
            # call, most of the lexical view's time in a routing decision; the same arithmetic by hand ~20 µs.
            self._analyzer = vectorizer.build_analyzer()
            self._vocabulary: dict[str, int] = vectorizer.vocabulary_
            self._idf: Array = vectorizer.idf_

        self._n_classes = int(y.max()) + 1
        parts = _holdout_folds(y, self.folds if self.folds > 1 else 5)
        held = parts if self.folds > 1 else parts[:1]
        logits, truth = [], []
        for idx in held:
            train = np.setdiff1d(np.arange(len(y)), idx)
            if len(np.unique(y[train])) < self._n_classes:
                continue  # a class with a single example cannot be held out; calibrate on the rest
            self._fit_raw(x[train], y[train], None if lex is None else lex[train])
            words = None if lex is None else lex[idx] @ self._lw + self._lb
            logits.append(self._raw_logits(x[idx], words))
            truth.append(y[idx])
        self._fit_raw(x, y, lex)
        self.temperature = _fit_temperature(np.vstack(logits), np.concatenate(truth)) if logits else 1.0
        return self

    def _fit_raw(self, x: Array, y: Labels, lex: Any = None) -> None:
        import numpy as np

        self._x, self._y = x, y
        if lex is not None:
            self._lw, self._lb = _fit_softmax(lex, y, self._n_classes, self.l2)
        if self.method in ("blend", "logreg"):
            self._w, self._b = _fit_softmax(x, y, self._n_classes, self.l2)
        if self.method == "centroid":
            cents = np.vstack([x[y == c].mean(axis=0) for c in range(self._n_classes)])
            self._centroids = cents / np.linalg.norm(cents, axis=1, keepdims=True)

    def _raw_logits(self, q: Array, words: Array | None = None) -> Array:
        """The blended logits; ``words`` are the word regression's logits for the same rows (lexical heads)."""
        if self.method == "centroid":
            out = _KNN_SCALE * (q @ self._centroids.T)
        elif self.method == "logreg":
            out = q @ self._w + self._b
        else:
            out = _KNN_SCALE * knn_scores(q @ self._x.T, self._y, self._n_classes, self.k)
            if self.method == "blend":
                out = out + q @ self._w + self._b
        if words is not None:
            out = out + self.lexical * words
        return out  # type: ignore[no-any-return]

    def predict_proba(self, q: Array, texts: Sequence[str] = ()) -> Array:
        """Calibrated class probabilities for query embeddings ``q`` (one row each).

        Raises:
            ValueError: the head has a lexical view and ``texts`` (the queries, row for row) are missing.
        """
        import numpy as np

        words = None
        if self._analyzer is not None:
            if len(texts) != q.shape[0]:
                raise ValueError("this head has a lexical view: pass the query texts, one per embedding")
            words = np.vstack([self._word_logits(text) for text in texts])
        return _softmax(self._raw_logits(q, words) / self.temperature)

    def _word_logits(self, text: str) -> Array:
        """The word regression's logits for one text: its TF-IDF row (sublinear counts times IDF, unit length),
        the vectoriser's own arithmetic, times the weights of the terms it has."""
        import numpy as np

        assert self._analyzer is not None  # only called for heads with a lexical view
        counts: dict[int, int] = {}
        for term in self._analyzer(text):
            column = self._vocabulary.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        if not counts:
            return self._lb
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self._idf[columns]
        weights /= np.linalg.norm(weights)
        return weights @ self._lw[columns] + self._lb

    def nearest_similarity(self, q: Array) -> Array:
        """Each query's cosine similarity to its single nearest example (how familiar it looks)."""
        return (q @ self._x.T).max(axis=1)  # type: ignore[no-any-return]
