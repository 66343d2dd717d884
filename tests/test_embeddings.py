"""The MiniLM embedder: lazy, normalised, cached by content, batch-consistent."""

from __future__ import annotations

import subprocess
import sys
import uuid

import numpy as np
import pytest

from mcphive.embeddings import Embedder, get_embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    shared = get_embedder()
    shared.embed_one("warm up")
    return shared


def test_importing_the_module_loads_neither_numpy_nor_the_model_stack() -> None:
    heavy = "('numpy', 'torch', 'sentence_transformers', 'transformers')"
    code = f"import sys, mcphive.embeddings; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_get_embedder_returns_one_instance_per_process() -> None:
    assert get_embedder() is get_embedder()


def test_embeddings_are_unit_length_float32_rows_of_the_model_dimension(embedder: Embedder) -> None:
    vectors = embedder.embed(["the cat sat on the mat", "a quarterly revenue report", ""])
    assert vectors.shape == (3, 384) == (3, embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    a, b, c = embedder.embed(
        ["How do I reset my password?", "Steps to change a forgotten login password", "Tomato soup recipe"]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_a_repeated_text_is_served_from_the_cache_without_encoding_again(embedder: Embedder) -> None:
    text = f"cache probe {uuid.uuid4()}"
    before = embedder.cache_stats()
    first = embedder.embed([text, text])
    middle = embedder.cache_stats()
    second = embedder.embed_one(text)
    after = embedder.cache_stats()
    assert middle.misses - before.misses == 1  # the duplicate inside one batch is encoded once
    assert middle.encoded_batches - before.encoded_batches == 1
    assert after.encoded_batches == middle.encoded_batches
    assert after.hits - middle.hits == 1
    np.testing.assert_array_equal(first[0], second)
    np.testing.assert_array_equal(first[0], first[1])


def test_a_batch_encodes_only_its_cache_misses(embedder: Embedder) -> None:
    seen, fresh = f"seen {uuid.uuid4()}", f"fresh {uuid.uuid4()}"
    embedder.embed_one(seen)
    before = embedder.cache_stats()
    embedder.embed([seen, fresh])
    after = embedder.cache_stats()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 1)


def test_batched_and_one_by_one_embeddings_agree(embedder: Embedder) -> None:
    uncached = Embedder(cache_size=0)  # shares the loaded model, but nothing comes from a cache
    texts = ["alpha beta gamma", "a much longer sentence about vector databases and retrieval", "x"]
    batch = uncached.embed(texts, batch_size=3)
    singles = np.stack([uncached.embed_one(text) for text in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert uncached.cache_stats().size == 0


def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    small = Embedder(cache_size=2)
    small.embed(["one", "two"])
    small.embed_one("one")  # "two" is now the least recently used
    small.embed_one("three")
    before = small.cache_stats()
    small.embed_one("one")
    assert small.cache_stats().hits == before.hits + 1
    small.embed_one("two")
    assert small.cache_stats().misses == before.misses + 1
    assert small.cache_stats().size == 2


def test_embed_refuses_a_bare_string(embedder: Embedder) -> None:
    with pytest.raises(TypeError, match="embed_one"):
        embedder.embed("not a list")


@pytest.mark.anyio
async def test_aembed_returns_the_same_vectors_as_embed(embedder: Embedder) -> None:
    texts = ["async embedding", "runs in a worker thread"]
    np.testing.assert_array_equal(await embedder.aembed(texts), embedder.embed(texts))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_device_is_chosen_before_first_use_and_a_conflicting_choice_later_is_a_config_error() -> None:
    from mcphive.embeddings import configure_embedder
    from mcphive.errors import ConfigError

    embedder = get_embedder()
    import torch

    embedder.embed_one("load the model")  # loaded on "auto": the GPU where torch sees one, else the CPU
    configure_embedder("auto")
    configure_embedder("cuda" if torch.cuda.is_available() else "cpu")  # the same device: nothing to change
    with pytest.raises(ConfigError, match="already loaded"):
        configure_embedder("cuda:7")
    assert get_embedder() is embedder
