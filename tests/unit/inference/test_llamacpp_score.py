"""Scoring a claimed answer on the real bundled model (spot checks), and the weights' SHA-256."""

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fpai_node.inference import llamacpp
from fpai_node.inference.base import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    ContextLengthExceeded,
    ModelNotFound,
    Sampling,
    Scorer,
)
from fpai_node.inference.llamacpp import LlamaCppBackend, LocalModel, weights_sha256
from fpai_node.testing.generation import collect

MODEL = "gemma-3-270m"
QUESTION = (ChatMessage("user", "Explain how a bicycle works to a child."),)
UNRELATED = "Quarterly revenue of the steel mill rose by seven percent, said the harbour master."
pytestmark = pytest.mark.timeout(120)
in_module_loop = pytest.mark.asyncio(loop_scope="module")  # where the module's backend lives


def greedy(max_tokens: int) -> Sampling:
    return Sampling(max_tokens=max_tokens, temperature=0.0, seed=1)


@in_module_loop
async def test_the_backend_is_a_scorer(backend: LlamaCppBackend) -> None:
    assert isinstance(backend, Scorer)


@in_module_loop
async def test_a_greedy_chat_answer_ranks_at_the_top(backend: LlamaCppBackend) -> None:
    text, finish = await collect(backend.chat(ChatRequest(MODEL, QUESTION, greedy(24))))
    score = await backend.score_chat(MODEL, QUESTION, text)
    assert score.prompt_tokens == finish.usage.prompt_tokens  # counted as the generation did
    assert len(score.ranks) == score.completion_tokens
    assert abs(score.completion_tokens - finish.usage.completion_tokens) <= 2
    # One prefill and token-by-token decoding may order near-ties differently: a token or two.
    assert sum(1 for r in score.ranks if r > 1) <= 2
    assert max(score.ranks) <= 3


@in_module_loop
async def test_a_greedy_completion_ranks_at_the_top(backend: LlamaCppBackend) -> None:
    prompt = "The three primary colours are"
    text, finish = await collect(backend.complete(CompletionRequest(MODEL, prompt, greedy(20))))
    score = await backend.score_completion(MODEL, prompt, text)
    assert score.prompt_tokens == finish.usage.prompt_tokens
    assert sum(1 for r in score.ranks if r > 1) <= 2


@in_module_loop
async def test_answers_longer_than_a_chunk_score_across_chunk_boundaries(
    backend: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off-by-one errors where chunks meet would put unrelated rows under the tokens."""
    monkeypatch.setattr(llamacpp, "SCORE_CHUNK", 5)
    text, _ = await collect(backend.chat(ChatRequest(MODEL, QUESTION, greedy(24))))
    score = await backend.score_chat(MODEL, QUESTION, text)
    assert score.completion_tokens > 3 * 5
    assert sum(1 for r in score.ranks if r > 1) <= 2


@in_module_loop
async def test_unrelated_text_ranks_far_down(backend: LlamaCppBackend) -> None:
    score = await backend.score_chat(MODEL, QUESTION, UNRELATED)
    assert score.completion_tokens == len(score.ranks) >= 15
    assert sum(1 for r in score.ranks if r > 2) > 0.5 * len(score.ranks)
    assert sum(1 for r in score.ranks if r > 40) > 0.25 * len(score.ranks)


@in_module_loop
async def test_an_empty_answer_has_no_ranks(backend: LlamaCppBackend) -> None:
    _, finish = await collect(backend.chat(ChatRequest(MODEL, QUESTION, greedy(1))))
    score = await backend.score_chat(MODEL, QUESTION, "")
    assert (score.prompt_tokens, score.completion_tokens, score.ranks) == (
        finish.usage.prompt_tokens,
        0,
        (),
    )


@in_module_loop
async def test_generation_after_scoring_is_unaffected(backend: LlamaCppBackend) -> None:
    seeded = CompletionRequest(MODEL, "Once upon a time", Sampling(max_tokens=12, seed=42))
    # Unseeded greedy requests reuse the cached prompt prefix: scoring must not poison it.
    unseeded = CompletionRequest(MODEL, "Once upon a time", Sampling(12, 0.0))
    before = [await collect(backend.complete(r)) for r in (seeded, unseeded)]
    await backend.score_completion(MODEL, "Once upon a time", UNRELATED)
    after_seeded = await collect(backend.complete(seeded))
    await backend.score_completion(MODEL, "Once upon a time", UNRELATED)
    after_unseeded = await collect(backend.complete(unseeded))
    assert [after_seeded, after_unseeded] == before


@in_module_loop
async def test_prompt_and_answer_beyond_the_context_are_refused(backend: LlamaCppBackend) -> None:
    with pytest.raises(ContextLengthExceeded, match="context of model gemma-3-270m"):
        await backend.score_completion(MODEL, "word " * 600, "x")
    with pytest.raises(ContextLengthExceeded, match=r"\(512 tokens\)"):
        await backend.score_chat(MODEL, QUESTION, "word " * 520)
    # The backend still works afterwards.
    assert (await backend.score_completion(MODEL, "Hello", " world")).completion_tokens == 1


@in_module_loop
async def test_unknown_model(backend: LlamaCppBackend) -> None:
    with pytest.raises(ModelNotFound):
        await backend.score_chat("nope", QUESTION, "x")
    with pytest.raises(ModelNotFound):
        await backend.score_completion("nope", "x", "y")


# --- the weights' SHA-256 ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def true_sha256(gguf_model: Path) -> bytes:
    return hashlib.sha256(gguf_model.read_bytes()).digest()


@in_module_loop
async def test_the_card_names_the_weights_sha256(
    backend: LlamaCppBackend, true_sha256: bytes
) -> None:
    (card,) = backend.models()
    assert card.sha256 == true_sha256


def sidecar_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256")


def forget_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp, "_hashes", {})


def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> bytes:
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(llamacpp, "file_sha256", refuse)


@in_module_loop
async def test_a_second_start_reads_the_sidecar(
    gguf_model: Path, true_sha256: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    linked = tmp_path / "model.gguf"
    os.link(gguf_model, linked)  # same bytes, a folder of its own for the sidecar
    forget_in_memory(monkeypatch)
    first = weights_sha256(linked)
    info = linked.stat()
    assert json.loads(sidecar_of(linked).read_text()) == {
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "sha256": first.hex(),
    }
    forget_in_memory(monkeypatch)
    no_hashing(monkeypatch)
    llama = LlamaCppBackend([LocalModel(MODEL, linked)], context_length=512, threads=2)
    await llama.start()
    try:
        (card,) = llama.models()
    finally:
        await llama.close()
    assert card.sha256 == first == true_sha256


def test_the_in_memory_cache_spares_the_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF weights")
    forget_in_memory(monkeypatch)
    digest = weights_sha256(weights)
    sidecar_of(weights).unlink()
    no_hashing(monkeypatch)
    assert weights_sha256(weights) == digest == hashlib.sha256(b"GGUF weights").digest()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda record: {**record, "mtime_ns": record["mtime_ns"] + 1},
        lambda record: {**record, "size": record["size"] + 1},
        lambda record: {**record, "sha256": "00" * 31},
        lambda record: {"size": record["size"]},
        lambda record: [record],
    ],
)
def test_a_sidecar_that_does_not_match_means_hashing_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[dict[str, object]], object],
) -> None:
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF weights")
    forget_in_memory(monkeypatch)
    weights_sha256(weights)
    record = json.loads(sidecar_of(weights).read_text())
    sidecar_of(weights).write_text(json.dumps(tamper(record)))
    forget_in_memory(monkeypatch)
    hashed: list[Path] = []
    real = llamacpp.file_sha256

    def counting(path: Path) -> bytes:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(llamacpp, "file_sha256", counting)
    assert weights_sha256(weights) == hashlib.sha256(b"GGUF weights").digest()
    assert hashed == [weights]
    assert json.loads(sidecar_of(weights).read_text()) == record  # repaired


def test_a_changed_file_is_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF weights")
    forget_in_memory(monkeypatch)
    weights_sha256(weights)
    weights.write_bytes(b"GGUF other weights")
    assert weights_sha256(weights) == hashlib.sha256(b"GGUF other weights").digest()


def test_a_read_only_folder_means_no_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF weights")
    forget_in_memory(monkeypatch)
    # os.access, because root (as in CI) may write into a folder of mode 0o555 anyway.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert weights_sha256(weights) == hashlib.sha256(b"GGUF weights").digest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.gguf"]


def test_a_failed_sidecar_write_is_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"GGUF weights")
    forget_in_memory(monkeypatch)
    sidecar_of(weights).mkdir()  # the sidecar's name is taken: replacing it fails
    assert weights_sha256(weights) == hashlib.sha256(b"GGUF weights").digest()
    assert sidecar_of(weights).is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".w.gguf.sha256", "w.gguf"]
