"""Continuous batching for the llama.cpp backend: every running generation of a model advances in
one `llama_decode` per step, as llama.cpp's own server and vLLM do.

One engine thread per model owns a llama context with `sequences` slots (llama.cpp's
`n_seq_max`). Each step it drops the generations whose consumer left (their cache cells are freed
at once), admits waiting ones into free slots, and decodes one batch: the last sampled token of
every generation that is answering, then prompt tokens of those still reading their prompt, at
most PREFILL_CHUNK a step, so that a newcomer's long prompt never stalls the running streams for
its whole evaluation. Every generation samples from its own row of logits with its own sampler
chain (temperature, top-p, seed), and its own stop scanner, budget and usage count.

The KV cache is split evenly (`kv_unified` off): each slot owns the context one request may use,
so no answer ever evicts another's. A request whose prompt and max_tokens do not fit its share is
refused up front (400 context_length_exceeded); one without max_tokens ends with `length` there.

Batching changes results: a sequence's logits move slightly with what shares its batch (near-ties
flip), so a seeded request is reproducible only for the same company (docs/api.md).
"""

import ctypes
import secrets
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp
import structlog
from llama_cpp import Llama

from fpai_node.errors import FpaiError
from fpai_node.inference.answer import StopScanner, token_budget
from fpai_node.inference.base import (
    BackendUnavailable,
    ContextLengthExceeded,
    Finish,
    FinishReason,
    GenerationEvent,
    InferenceError,
    InvalidRequest,
    Sampling,
    TextChunk,
    Usage,
)
from fpai_node.inference.chat_format import FormattedPrompt

# Prompt tokens evaluated per step across all newcomers. Measured on 2 cores (Gemma 3 270M), a
# step of 7 answering streams takes 62 ms, and 370 ms with a chunk of 128 prompt tokens beside
# them: the longest pause a running stream sees while a newcomer's prompt is read. A burst of 8
# short prompts still fits in one step, which keeps its time to first token at one step.
PREFILL_CHUNK = 128
DEFAULT_TEMPERATURE = 0.8  # llama.cpp's own default: varied text without drifting off topic
DEFAULT_TOP_P = 0.95
TOP_K, MIN_P = 40, 0.05  # what llama-cpp-python's `Llama.generate` applies, kept for the same text
log = structlog.get_logger("fpai.inference.llama_batch")

Emit = Callable[[GenerationEvent | BaseException], None]


@dataclass(frozen=True, slots=True)
class BatchSettings:
    sequences: int  # generations decoded together; more wait in the admission queue
    context: int  # tokens of KV cache each sequence owns: the context one request may use
    threads: int
    flash_attention: bool


@dataclass(slots=True)
class Job:
    """A generation as the backend hands it over: built on the loop, run on the engine thread."""

    build_prompt: Callable[[], FormattedPrompt]
    sampling: Sampling
    emit: Emit
    cancelled: threading.Event


class _Running:
    """One admitted generation: its slot, its place in the prompt and its answer so far."""

    def __init__(
        self, job: Job, seq_id: int, prompt: list[int], stops: Sequence[str], budget: int
    ) -> None:
        self.job = job
        self.seq_id = seq_id
        self.prompt = prompt
        self.budget = budget  # completion tokens allowed
        self.sampler = _sampler(job.sampling)
        self.fed = 0  # prompt tokens in the cache
        self.generated = 0  # completion tokens counted in usage
        self.next_token = -1  # the sampled token to feed at the next step (answering only)
        self.scanner = StopScanner((*stops, *job.sampling.stop))

    @property
    def answering(self) -> bool:
        return self.fed == len(self.prompt)


class BatchEngine:
    """The batched decoding loop of one model, on a thread of its own."""

    def __init__(self, llm: Llama, model_id: str, settings: BatchSettings) -> None:
        self._llm = llm
        self._vocab = llm._model.vocab
        self._model_id = model_id
        self._n_batch = PREFILL_CHUNK + settings.sequences  # every answer token and one chunk
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = settings.sequences * settings.context
        params.n_seq_max = settings.sequences
        params.n_batch = params.n_ubatch = self._n_batch
        # One row of logits per sequence a step at most (262k-entry vocabularies make a full
        # batch of rows cost 512 x 1 MiB): the output buffer is sized for that.
        params.n_outputs_max = settings.sequences
        params.n_threads = params.n_threads_batch = settings.threads
        params.kv_unified = False
        # Sliding-window layers keep only their window per sequence, not the whole context:
        # nothing here reuses a cached prefix, which is all a full-size window cache is for.
        params.swa_full = False
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if settings.flash_attention
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
        if not ctx:
            raise FpaiError(
                f"cannot create a llama.cpp context for model {model_id} with {settings.sequences} "
                f"sequences of {settings.context} tokens"
            )
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self.context = int(llama_cpp.llama_n_ctx_seq(ctx))  # each sequence's share, as built
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._piece_buffer = ctypes.create_string_buffer(64)  # a token's text; grown if needed
        self._free = deque(range(settings.sequences))
        self._running: list[_Running] = []
        self._waiting: deque[Job] = deque()
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(
            target=self._serve, name=f"llama-batch-{model_id}", daemon=True
        )
        self._thread.start()

    # ---- any thread --------------------------------------------------------------------------

    @property
    def running(self) -> int:
        """Sequences holding a slot now (a snapshot, from any thread)."""
        return len(self._running)

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._closing:
                job.emit(BackendUnavailable(f"model {self._model_id} is shutting down"))
                return
            self._waiting.append(job)
            self._lock.notify()

    def close(self) -> None:
        """Stop after the current step; every unfinished generation gets BackendUnavailable.
        Blocks until the thread has freed the context (call it off the event loop)."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join()

    # ---- the engine thread -------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while self._next_round():
                self._step()
        except Exception as exc:  # a bug of ours: every generation learns it, none hangs
            log.exception("the batch engine stopped", model=self._model_id)
            self._fail_all(InferenceError(f"decoding stopped on model {self._model_id}: {exc}"))
        finally:
            with self._lock:
                self._closing = True  # later requests are refused at once, not left waiting
            self._fail_all(BackendUnavailable(f"model {self._model_id} is shutting down"))
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)

    def _next_round(self) -> bool:
        """Wait for work; admit newcomers into free slots. False once closing."""
        self._drop_cancelled()
        with self._lock:
            while not self._closing and not self._running and not self._waiting:
                self._lock.wait()
            if self._closing:
                return False
            admitted = []
            while self._waiting and self._free:
                admitted.append((self._waiting.popleft(), self._free.popleft()))
        for job, seq_id in admitted:
            self._admit(job, seq_id)
        return True

    def _admit(self, job: Job, seq_id: int) -> None:
        if job.cancelled.is_set():
            self._free.append(seq_id)
            return
        try:
            formatted = job.build_prompt()
            prompt = self._llm.tokenize(
                formatted.prompt.encode("utf-8"), add_bos=True, special=True
            )
            budget = token_budget(
                len(prompt), job.sampling.max_tokens, self.context, self._model_id
            )
        except Exception as exc:  # the one request's failure, not the batch's
            self._free.append(seq_id)
            job.emit(_as_request_error(exc, self._model_id))
            return
        self._running.append(_Running(job, seq_id, prompt, formatted.stop, budget))

    def _drop_cancelled(self) -> None:
        for running in [r for r in self._running if r.job.cancelled.is_set()]:
            self._release(running)

    def _step(self) -> None:
        """One decode: every answering sequence's next token, then up to PREFILL_CHUNK prompt
        tokens; then each sequence whose row of logits came back samples its next token."""
        if not self._running:
            return
        batch, rows = self._batch, []
        n = 0
        for running in self._running:
            if running.answering:
                position = running.fed + running.generated - 1
                _put(batch, n, running.next_token, position, running.seq_id)
                batch.logits[n] = 1
                rows.append((running, n))
                n += 1
        room = PREFILL_CHUNK
        for running in self._running:
            if running.answering or room == 0:
                continue
            take = min(room, len(running.prompt) - running.fed)
            for i in range(running.fed, running.fed + take):
                _put(batch, n, running.prompt[i], i, running.seq_id)
                n += 1
            running.fed += take
            room -= take
            if running.answering:
                batch.logits[n - 1] = 1
                rows.append((running, n - 1))
        batch.n_tokens = n
        status = llama_cpp.llama_decode(self._ctx, batch)
        if status != 0:  # no cache room (1), aborted (2) or an error (< 0): this batch is lost
            log.error("llama_decode failed", model=self._model_id, status=status)
            self._fail_running(InferenceError(f"decoding failed on model {self._model_id}"))
            return
        for running, row in rows:
            token = llama_cpp.llama_sampler_sample(running.sampler, self._ctx, row)
            self._advance(running, token)

    def _advance(self, running: _Running, token: int) -> None:
        """Take the sampled token: stream its text, or finish the generation. (A cancelled
        generation is dropped before the next step, by `_drop_cancelled`.)"""
        reason: FinishReason | None = None
        stopped = False  # by a stop sequence: what the scanner holds back is not answer text
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            reason = "stop"
        else:
            running.generated += 1
            ready, stopped = running.scanner.feed(self._piece(token))
            if ready:
                running.job.emit(TextChunk(ready))
            if stopped:
                reason = "stop"
            elif running.generated >= running.budget:
                reason = "length"
        if reason is None:
            running.next_token = token
            return
        self._release(running)  # before the consumer hears of it: its next request finds room
        if rest := running.scanner.flush(stopped=stopped):
            running.job.emit(TextChunk(rest))
        running.job.emit(Finish(reason, Usage(len(running.prompt), running.generated)))

    def _piece(self, token: int) -> bytes:
        """The token's text. Not `Llama.detokenize`: its 32-byte buffer empties every longer
        piece (hundreds of whole Hindi or Bengali words in Gemma's vocabulary)."""
        buffer = self._piece_buffer
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if n < 0:  # too small: llama.cpp says how many bytes the piece needs; keep the larger one
            buffer = self._piece_buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:n]

    def _release(self, running: _Running) -> None:
        """Free the sequence's cache cells, sampler and slot: at once, for the next request."""
        self._running.remove(running)
        llama_cpp.llama_memory_seq_rm(self._memory, running.seq_id, -1, -1)
        llama_cpp.llama_sampler_free(running.sampler)
        self._free.append(running.seq_id)

    def _fail_running(self, error: InferenceError) -> None:
        for running in list(self._running):
            running.job.emit(error)
            self._release(running)

    def _fail_all(self, error: InferenceError) -> None:
        self._fail_running(error)
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
        for job in waiting:
            job.emit(error)


def _as_request_error(exc: Exception, model_id: str) -> Exception:
    """What a request that could not be admitted is told: the request's own fault as a 400
    (llama-cpp-python reports bad input as ValueError), anything else as it is, logged."""
    if isinstance(exc, ContextLengthExceeded | InvalidRequest):
        return exc
    if isinstance(exc, ValueError):
        return InvalidRequest(str(exc))
    log.exception("generation failed", model=model_id)
    return exc


def _put(batch: Any, n: int, token: int, pos: int, seq_id: int) -> None:
    batch.token[n] = token
    batch.pos[n] = pos
    batch.n_seq_id[n] = 1
    batch.seq_id[n][0] = seq_id
    batch.logits[n] = 0


def _sampler(sampling: Sampling) -> Any:
    """The request's own chain, as `Llama.generate` builds it: greedy at temperature 0, else
    top-k, top-p, min-p, temperature and a seeded draw."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    temperature = DEFAULT_TEMPERATURE if sampling.temperature is None else sampling.temperature
    if temperature <= 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    top_p = DEFAULT_TOP_P if sampling.top_p is None else sampling.top_p
    seed = secrets.randbits(32) if sampling.seed is None else sampling.seed & 0xFFFFFFFF
    for link in (
        llama_cpp.llama_sampler_init_top_k(TOP_K),
        llama_cpp.llama_sampler_init_top_p(top_p, 1),
        llama_cpp.llama_sampler_init_min_p(MIN_P, 1),
        llama_cpp.llama_sampler_init_temp(temperature),
        llama_cpp.llama_sampler_init_dist(seed),
    ):
        llama_cpp.llama_sampler_chain_add(chain, link)
    return chain
