import numpy as np

from core.embeddings import SHORT_BATCH, LocalEmbedder, get_embedder


def test_local_embedder_gives_normalised_384_dim_vectors():
    embedder = get_embedder()
    assert isinstance(embedder, LocalEmbedder)
    vectors = embedder.embed(["I love hiking in the mountains.", "Die Katze schläft."])
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dims == 384


def test_similar_sentences_score_higher_than_unrelated():
    a, b, c = get_embedder().embed(
        [
            "My favourite programming language is Python.",
            "I mostly write code in Python.",
            "The soup needs more salt.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_model_loads_once_per_process():
    first = get_embedder()
    first.embed(["warm up"])
    for _ in range(3):
        get_embedder().embed(["again"])
    assert get_embedder() is first
    assert isinstance(first, LocalEmbedder)
    assert first.load_count == 1


def test_empty_input_needs_no_model():
    embedder = LocalEmbedder()
    assert embedder.embed([]).shape == (0, 384)
    assert not embedder.loaded


def test_short_and_batched_paths_give_the_same_vectors():
    """A few texts go straight through the model's modules, many through encode(): same vectors,
    whatever the padding of the batch."""
    embedder = get_embedder()
    assert isinstance(embedder, LocalEmbedder)
    texts = [f"Sentence number {n} about {'long ' * n}walks by the sea." for n in range(SHORT_BATCH + 4)]
    batched = embedder._encode(texts)
    one_by_one = np.stack([embedder._encode([text])[0] for text in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(one_by_one, axis=1), 1.0, atol=1e-5)
