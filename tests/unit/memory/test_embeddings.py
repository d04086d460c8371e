"""The real all-MiniLM-L6-v2 on onnxruntime (fpai_node/memory/embeddings.py, issue 15): what a
memory search relies on. Meaning decides similarity, batching and padding change nothing, long
text is truncated, and a file that is not the pinned one is refused in one line."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from fpai_node.memory.embeddings import (
    BATCH,
    DIMENSIONS,
    MAX_TOKENS,
    Embedder,
    EmbeddingModelError,
    bundled_files,
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.bundled()


def test_paraphrases_are_close_and_unrelated_texts_are_not(embedder: Embedder) -> None:
    cat, cat_again, revenue = embedder.embed(
        [
            "The cat sits on the mat.",
            "A cat is sitting on a mat.",
            "Quarterly revenue grew by four percent.",
        ]
    )
    assert cat @ cat_again > 0.9
    assert abs(cat @ revenue) < 0.2
    assert cat @ cat_again > cat @ revenue + 0.7


def test_vectors_are_unit_rows_of_384_floats_in_input_order(embedder: Embedder) -> None:
    texts = [f"fact number {i}: the user prefers tea" for i in range(3)] + ["é, 漢字, 🙂"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (len(texts), DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, DIMENSIONS)
    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(embedder.embed([text])[0], vector, atol=1e-5)


def test_batches_and_padding_change_nothing(embedder: Embedder) -> None:
    """A text's vector does not depend on the batch it is in, nor on how long its neighbours
    are (padding is masked out of the mean)."""
    short = "tea"
    texts = [short, "a much longer sentence about the federation " * 10] * (BATCH + 3)
    together = embedder.embed(texts)
    assert np.allclose(together[0], embedder.embed([short])[0], atol=1e-5)
    assert np.allclose(together[0], together[-2], atol=1e-5)  # first and second batch agree


def test_text_beyond_the_models_length_is_truncated(embedder: Embedder) -> None:
    """MAX_TOKENS counts [CLS] and [SEP]: "word" is one token, so 254 of them fill it, and
    what follows cannot change the vector; a change inside the limit does."""
    inside = MAX_TOKENS - 2
    words = ["word"] * inside
    past, at_the_edge, before_it = embedder.embed(
        [
            " ".join([*words, "revenue", "grew"]),
            " ".join([*words[:-1], "revenue"]),
            " ".join(words),
        ]
    )
    assert np.array_equal(past, before_it)  # the words past the limit were never read
    assert not np.allclose(at_the_edge, before_it, atol=1e-4)  # the last one inside was


def test_a_file_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    model, tokenizer = bundled_files()
    tampered = tmp_path / "model.onnx"
    shutil.copyfile(model, tampered)
    with tampered.open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(EmbeddingModelError, match="sha256"):
        Embedder(tampered, tokenizer)
    with pytest.raises(EmbeddingModelError, match="cannot read"):
        Embedder(model, tmp_path / "missing.json")
