"""In-process llama.cpp backend (llama-cpp-python) for CPU inference.

Each model decodes all its running generations in one batch on an engine thread of its own
(llama_batch.py: continuous batching, a context with one KV share per sequence). A second thread
loads the model and scores spot checks on the model's own context (`Llama`), and a third computes
embeddings (a context opened with mean pooling on first use): a llama context is not thread-safe,
so each has one thread. Tokens cross to the event loop through `call_soon_threadsafe`; the loop
never waits on llama.cpp. Spot checks score a claimed answer in one prefill of prompt and answer,
reading every answer position's logits.
"""

import asyncio
import contextlib
import ctypes
import hashlib
import json
import math
import os
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt
import structlog
from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

from fpai_node.errors import FpaiError
from fpai_node.inference.base import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    ContextLengthExceeded,
    Embeddings,
    Finish,
    GenerationEvent,
    InferenceError,
    ModelCard,
    ModelNotFound,
    Sampling,
    Score,
)
from fpai_node.inference.chat_format import ChatFormatter, FormattedPrompt, formatter_for
from fpai_node.inference.llama_batch import BatchEngine, BatchSettings, Job

DEFAULT_CONTEXT = 4096  # tokens per request; capped at the model's training context
DEFAULT_SEQUENCES = 8  # see config.py's batch_sequences for the measurement behind it
# Answer tokens scored per decode: the logits of every scored position come back at once, so this
# bounds that buffer (64 rows x 262k vocabulary x 4 bytes = 64 MiB for Gemma) where a full batch
# of 512 would hold 512 MiB for the life of the context.
SCORE_CHUNK = 64
_HASH_BLOCK = 1 << 20  # bytes read at a time while hashing weights
log = structlog.get_logger("fpai.inference.llamacpp")
_GGML_LOG_WARN, _GGML_LOG_ERROR = 3, 4  # ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR, CONT


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp prints its own lines to stderr, breaking JSON logs: route its warnings (mostly
    notes about context sizes) to debug and its errors to warnings, as structured events."""
    if level == _GGML_LOG_ERROR:
        log.warning("llama.cpp", message=text.decode("utf-8", "replace").strip())
    elif level == _GGML_LOG_WARN:
        log.debug("llama.cpp", message=text.decode("utf-8", "replace").strip())


llama_cpp.llama_log_set(_llama_log, ctypes.c_void_p(0))


@dataclass(frozen=True, slots=True)
class LocalModel:
    id: str
    path: Path


@dataclass
class _Slot:
    model: LocalModel
    llm: Llama  # tokenizer, chat template, and the context spot checks are scored on
    formatter: ChatFormatter
    engine: BatchEngine
    scorer: ThreadPoolExecutor  # loads the model, then scores on `llm`'s context
    embedder_pool: ThreadPoolExecutor
    sha256: bytes
    embedder: Llama | None = None

    @property
    def n_ctx(self) -> int:
        """The context one request may use: its sequence's share of the batch's cache."""
        return self.engine.context


class LlamaCppBackend:
    def __init__(
        self,
        models: Sequence[LocalModel],
        *,
        context_length: int = DEFAULT_CONTEXT,
        threads: int | None = None,
        sequences: int = DEFAULT_SEQUENCES,
        flash_attention: bool = True,
    ) -> None:
        """`sequences`: generations of a model decoded together, each with `context_length`
        tokens of cache; `flash_attention` for the batch (faster on CPU too, measured)."""
        self._specs = list(models)
        self._context_length = context_length
        self._threads = threads or os.cpu_count() or 1
        self._sequences = sequences
        self._flash_attention = flash_attention
        self._slots: dict[str, _Slot] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for spec in self._specs:
            scorer = ThreadPoolExecutor(1, thread_name_prefix=f"llama-{spec.id}")
            # Hash while loading: both read the whole file, and the page cache serves the second.
            sha256, llm = await asyncio.gather(
                loop.run_in_executor(None, _model_sha256, spec),
                loop.run_in_executor(scorer, self._load_capped, spec),
            )
            formatter, template = formatter_for(llm)
            settings = BatchSettings(
                self._sequences, llm.n_ctx(), self._threads, self._flash_attention
            )
            engine = await loop.run_in_executor(scorer, BatchEngine, llm, spec.id, settings)
            self._slots[spec.id] = _Slot(
                spec,
                llm,
                formatter,
                engine,
                scorer,
                ThreadPoolExecutor(1, thread_name_prefix=f"embed-{spec.id}"),
                sha256,
            )
            log.info(
                "model loaded",
                model=spec.id,
                path=str(spec.path),
                n_ctx=engine.context,
                sequences=self._sequences,
                flash_attention=self._flash_attention,
                chat_template=template,
                threads=self._threads,
            )

    def _load_capped(self, spec: LocalModel) -> Llama:
        """The model with the configured context, capped at the one it was trained with. The
        cap must be known before loading (the KV cache is allocated for the whole context), so
        it is read once from a vocabulary-only open; the embedder reuses the result."""
        trained = _training_context(spec.path)
        n_ctx = min(self._context_length, trained) if trained else self._context_length
        return self._load(spec, n_ctx)

    def _load(self, spec: LocalModel, n_ctx: int, **extra: Any) -> Llama:
        try:
            return Llama(
                model_path=str(spec.path),
                n_ctx=n_ctx,
                n_threads=self._threads,
                verbose=False,
                **extra,
            )
        except (ValueError, RuntimeError) as exc:
            raise FpaiError(f"cannot load model {spec.id} from {spec.path}: {exc}") from None

    async def close(self) -> None:
        slots, self._slots = list(self._slots.values()), {}
        loop = asyncio.get_running_loop()
        for slot in slots:
            # Engines stop after their current step, failing what runs; wait off the loop.
            await loop.run_in_executor(None, _shutdown, slot)

    def models(self) -> Sequence[ModelCard]:
        return [
            ModelCard(
                s.model.id,
                "llamacpp",
                context_length=s.n_ctx,
                capacity=self._sequences,
                sha256=s.sha256,
            )
            for s in self._slots.values()
        ]

    def chat(self, request: ChatRequest) -> AsyncGenerator[GenerationEvent, None]:
        slot = self._slot(request.model)

        def prompt() -> FormattedPrompt:
            return slot.formatter(request.messages)

        return self._generate(slot, prompt, request.sampling)

    def complete(self, request: CompletionRequest) -> AsyncGenerator[GenerationEvent, None]:
        slot = self._slot(request.model)
        return self._generate(slot, lambda: FormattedPrompt(request.prompt, ()), request.sampling)

    async def embed(self, model: str, inputs: Sequence[str]) -> Embeddings:
        slot = self._slot(model)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(slot.embedder_pool, self._embed, slot, list(inputs))

    async def score_chat(
        self, model: str, messages: Sequence[ChatMessage], completion: str
    ) -> Score:
        """Score `completion` as the answer to `messages`, the prompt formatted as `chat` does."""
        slot = self._slot(model)
        turns = tuple(messages)
        return await self._score(slot, lambda: slot.formatter(turns).prompt, completion)

    async def score_completion(self, model: str, prompt: str, completion: str) -> Score:
        """Score `completion` as the continuation of `prompt`, as `complete` would generate it."""
        return await self._score(self._slot(model), lambda: prompt, completion)

    async def _score(self, slot: _Slot, build_prompt: Callable[[], str], completion: str) -> Score:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(slot.scorer, _score, slot, build_prompt, completion)

    def _slot(self, model: str) -> _Slot:
        try:
            return self._slots[model]
        except KeyError:
            raise ModelNotFound(f"model {model!r} is not served here") from None

    async def _generate(
        self, slot: _Slot, build_prompt: Callable[[], FormattedPrompt], sampling: Sampling
    ) -> AsyncGenerator[GenerationEvent, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[GenerationEvent | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: GenerationEvent | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancelled.set()

        slot.engine.submit(Job(build_prompt, sampling, emit, cancelled))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Finish):
                    return
        finally:
            cancelled.set()  # the engine frees the sequence at its next step

    def _embed(self, slot: _Slot, inputs: list[str]) -> Embeddings:
        if slot.embedder is None:
            slot.embedder = self._load(
                slot.model, slot.n_ctx, embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN
            )
        embedder = slot.embedder
        limit = embedder.n_ctx()
        for index, text in enumerate(inputs):
            n = len(embedder.tokenize(text.encode("utf-8"), add_bos=True, special=True))
            if n > limit:
                raise ContextLengthExceeded(
                    f"input[{index}] has {n} tokens; model {slot.model.id} embeds at most {limit}"
                )
        result = embedder.create_embedding(inputs)
        vectors = [_normalised(item["embedding"]) for item in result["data"]]
        return Embeddings(vectors, int(result["usage"]["prompt_tokens"]))


def _score(slot: _Slot, build_prompt: Callable[[], str], completion: str) -> Score:
    """One prefill of prompt and answer on the model's worker thread. The prompt is evaluated as
    a generation evaluates it (`Llama.eval`, whose last row predicts answer token 0); the answer
    follows in chunks whose every row is kept. The last answer token is never evaluated (as in a
    generation), so an answer that filled the context still fits."""
    llm = slot.llm
    prompt = llm.tokenize(build_prompt().encode("utf-8"), add_bos=True, special=True)
    answer = llm.tokenize(completion.encode("utf-8"), add_bos=False, special=False)
    evaluated = len(prompt) + max(len(answer) - 1, 0)
    if evaluated > slot.n_ctx:
        raise ContextLengthExceeded(
            f"the prompt ({len(prompt)} tokens) and the answer ({len(answer)} tokens) exceed the "
            f"context of model {slot.model.id} ({slot.n_ctx} tokens)"
        )
    if not answer:
        return Score(len(prompt), 0, ())
    n_vocab = llm.n_vocab()
    chunk = min(SCORE_CHUNK, llm.n_batch)  # the batch holds n_batch tokens, no more
    ranks: list[int] = []
    try:
        llm.reset()  # type: ignore[no-untyped-call]
        llm.eval(prompt)
        first = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(1, n_vocab))
        ranks.extend(_ranks(first, answer[:1]))
        # Inputs answer[:-1] at positions len(prompt)...; their rows predict answer[1:].
        for start in range(0, len(answer) - 1, chunk):
            inputs = answer[start : min(start + chunk, len(answer) - 1)]
            llm._batch.set_batch(inputs, n_past=len(prompt) + start, logits_all=True)
            llm._ctx.decode(llm._batch)
            logits = llama_cpp.llama_get_logits(llm._ctx.ctx)
            rows = np.ctypeslib.as_array(logits, shape=(len(inputs), n_vocab))
            ranks.extend(_ranks(rows, answer[start + 1 : start + 1 + len(inputs)]))
    except RuntimeError as exc:  # llama_decode failed: not the request's fault
        raise InferenceError(f"scoring failed on model {slot.model.id}: {exc}") from None
    finally:
        # The context now holds the answer, not what `input_ids` says: the next generation
        # must evaluate its prompt from scratch (n_tokens = 0 defeats prefix reuse).
        llm.reset()  # type: ignore[no-untyped-call]
    return Score(len(prompt), len(answer), tuple(ranks))


def _ranks(rows: npt.NDArray[np.float32], targets: Sequence[int]) -> list[int]:
    """For each row of logits, 1 + the number of entries strictly above the target's."""
    chosen = rows[np.arange(len(targets)), np.asarray(targets)]
    above = (rows > chosen[:, None]).sum(axis=1)
    return [int(n) + 1 for n in above]


def _normalised(vector: Sequence[float] | Sequence[Sequence[float]]) -> list[float]:
    """L2-normalised, as OpenAI returns them; per-token vectors (no pooling) are averaged."""
    array: npt.NDArray[np.float64] = np.asarray(vector, dtype=np.float64)
    if array.ndim == 2:
        array = array.mean(axis=0)
    norm = math.sqrt(float(array @ array))
    return (array / norm).tolist() if norm else array.tolist()  # type: ignore[no-any-return]


def _training_context(path: Path) -> int | None:
    """The context length the model was trained with, from GGUF metadata (vocab_only: no
    weights, no KV cache)."""
    try:
        probe = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError):
        return None
    try:
        arch = probe.metadata.get("general.architecture", "")
        value = probe.metadata.get(f"{arch}.context_length")
        return int(value) if value else None
    except ValueError:
        return None
    finally:
        probe.close()


_hashes: dict[tuple[str, int, int], bytes] = {}  # (resolved path, size, mtime_ns) -> SHA-256


def file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.digest()


def weights_sha256(path: Path) -> bytes:
    """SHA-256 of a weights file, cached: in memory per process, and in a sidecar JSON file
    `.<name>.sha256` beside it when that directory is writable (hashing 253 MB takes about
    0.5 s, and tests start many nodes). A changed size or mtime means hashing again."""
    resolved = path.resolve()
    info = resolved.stat()
    key = (str(resolved), info.st_size, info.st_mtime_ns)
    if (known := _hashes.get(key)) is not None:
        return known
    sidecar = resolved.with_name(f".{resolved.name}.sha256")
    digest = _read_sidecar(sidecar, info)
    if digest is None:
        digest = file_sha256(resolved)
        after = resolved.stat()
        if (after.st_size, after.st_mtime_ns) != (info.st_size, info.st_mtime_ns):
            return digest  # changed while hashing: neither cache may keep this pair
        _write_sidecar(sidecar, info, digest)
    _hashes[key] = digest
    return digest


def _read_sidecar(sidecar: Path, info: os.stat_result) -> bytes | None:
    try:
        recorded = json.loads(sidecar.read_text())
        if recorded["size"] == info.st_size and recorded["mtime_ns"] == info.st_mtime_ns:
            digest = bytes.fromhex(recorded["sha256"])
            return digest if len(digest) == hashlib.sha256().digest_size else None
    except (OSError, ValueError, TypeError, KeyError):
        pass
    return None


def _write_sidecar(sidecar: Path, info: os.stat_result, digest: bytes) -> None:
    """Best effort: a read-only model directory (or any write error) just means no cache."""
    if not os.access(sidecar.parent, os.W_OK):
        return
    record = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": digest.hex()}
    temporary = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(record))
        os.replace(temporary, sidecar)  # atomic: a concurrent start never reads half a record
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def _model_sha256(spec: LocalModel) -> bytes:
    try:
        return weights_sha256(spec.path)
    except OSError as exc:
        raise FpaiError(f"cannot read model {spec.id} from {spec.path}: {exc}") from None


def _shutdown(slot: _Slot) -> None:
    slot.engine.close()
    slot.scorer.shutdown(wait=True)
    slot.embedder_pool.shutdown(wait=True)
    slot.llm.close()
    if slot.embedder is not None:
        slot.embedder.close()
