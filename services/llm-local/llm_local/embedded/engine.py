"""The decode loop: one thread owns the llama context and decodes every live sequence.

Each step builds one batch: one token per generating sequence, then prompt
chunks (cached prefixes first, new requests in arrival order) up to a budget,
runs one `llama_decode`, and samples a token for every sequence whose output
row it asked for. Requests wait in a queue for a free sequence id and enough
free KV cells; a request's cells are reserved up front (prompt rest + max_tokens)
so a decode never runs out of room halfway.

The consumer side (asyncio) only appends jobs and sets `Job.cancelled`; all
llama state is touched by this thread alone.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog

from llm_local.backends.base import (
    BackendError,
    DeadlineExceeded,
    Finished,
    FinishReason,
    InvalidRequest,
    NotReady,
    SchemaUnsupported,
    StopCause,
    TextDelta,
)
from llm_local.embedded import clib
from llm_local.embedded.batch import BatchError, TokenBatch
from llm_local.embedded.detokenizer import Detokenizer
from llm_local.embedded.jobs import Job, Outcome
from llm_local.embedded.model import LoadedModel, ModelLoadError
from llm_local.embedded.prefix_cache import PrefixCache, PrefixSlot
from llm_local.embedded.sampling import DEFAULT_TOP_K, Candidates, SamplingError, SequenceSampler

log = structlog.get_logger("llm_local.embedded")

IDLE_WAIT_S = 0.5  # how often an idle loop looks at queued deadlines
GRAMMAR_PROTOTYPES = 16
RATE_WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    n_ctx: int
    n_threads: int
    n_batch: int
    max_sequences: int
    # Grammar sampling looks at this many top candidates first; 0: whole vocabulary.
    grammar_top_k: int = DEFAULT_TOP_K
    # Sequences reserved for cached prompt prefixes (the dm uses one per flow+language).
    prefix_slots: int = 4
    # Prompt tokens decoded per step across new requests. Small: requests that arrive
    # together get their first tokens one after another instead of all at the end
    # (on 2 cores, 32 gave a lower first-token p50 at 8 clients than 128), and
    # running streams stall for at most one chunk.
    prefill_chunk: int = 32


class Phase(enum.Enum):
    WAIT_PREFIX = "wait_prefix"  # its cached prefix is still being decoded
    PREFILL = "prefill"
    GENERATE = "generate"


@dataclass(eq=False, slots=True)
class _Sequence:
    job: Job
    seq_id: int
    sampler: SequenceSampler
    detokenizer: Detokenizer
    slot: PrefixSlot | None
    cells: int  # KV cells reserved for it
    started_at: float
    phase: Phase = Phase.PREFILL
    n_past: int = 0  # positions in the KV cache
    generated: int = 0
    last_token: int = -1
    row: int = -1  # batch row of its logits this step; -1: none
    prefilling: int = 0  # prompt tokens in this step's batch


_SeqAction = Callable[[_Sequence], None]


@dataclass(slots=True)
class EngineCounters:
    requests: int = 0
    completed: int = 0
    cancellations: int = 0
    deadline_stops: int = 0
    queue_timeouts: int = 0
    failures: int = 0
    engine_errors: int = 0
    prefix_hits: int = 0  # admitted onto a prefix already decoded or being decoded
    prefix_misses: int = 0  # had a cacheable prefix that was not there
    steps: int = 0
    tokens: int = 0
    recent: deque[tuple[float, int]] = field(default_factory=deque)


class Engine:
    """Owns the llama context and the decode thread."""

    def __init__(self, model: LoadedModel, config: EngineConfig) -> None:
        self.config = config
        self._model = model
        n_seq_max = config.max_sequences + config.prefix_slots
        if n_seq_max > clib.max_parallel_sequences():
            raise ValueError(
                f"max_sequences + prefix slots = {n_seq_max} exceeds llama.cpp's "
                f"{clib.max_parallel_sequences()}"
            )
        params = clib.context_default_params()
        params.n_ctx = config.n_ctx
        params.n_batch = params.n_ubatch = min(config.n_batch, config.n_ctx)
        params.n_seq_max = n_seq_max
        params.n_threads = params.n_threads_batch = config.n_threads
        # One KV buffer for all sequences: n_ctx is shared rather than split per
        # sequence, and copying a cached prefix only tags its cells (no data copy).
        params.kv_unified = True
        # Measured on 2 cores: flash attention makes both prefill and decode slower.
        params.flash_attn_type = clib.FLASH_ATTN_DISABLED
        params.no_perf = True
        ctx = clib.context_new(model.ptr, params)
        if ctx is None:
            raise ModelLoadError(f"llama.cpp could not create a context (n_ctx={config.n_ctx})")
        self._ctx = ctx
        self._mem = clib.memory(ctx)
        self.n_ctx = clib.n_ctx(ctx)
        self._batch = TokenBatch(clib.n_batch(ctx), n_seq_max, model.n_vocab)
        if self._batch.capacity <= config.max_sequences:
            self._batch.close()
            clib.context_free(ctx)
            raise ValueError(
                f"n_batch ({self._batch.capacity}) must exceed max_sequences "
                f"({config.max_sequences}): every step decodes a token of each sequence"
            )
        self._candidates = Candidates(model.n_vocab, config.grammar_top_k)
        self._prefixes = PrefixCache(range(config.max_sequences, n_seq_max))
        self._grammars: OrderedDict[str, clib.SamplerPtr] = OrderedDict()
        self._free_ids = list(range(config.max_sequences - 1, -1, -1))
        self._live: list[_Sequence] = []
        self._waiting: deque[Job] = deque()
        self._pending: deque[Job] = deque()
        self._outbox: dict[Job, list[Outcome]] = {}
        self._filling: list[tuple[PrefixSlot, int]] = []  # prefix chunks in this step's batch
        self._reserved = 0
        self._turn_s = 1.0  # moving average of a request's time in a sequence
        self.counters = EngineCounters()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llm-decode", daemon=True)

    # --- consumer side (any thread) ------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @property
    def active(self) -> int:
        return len(self._live)

    @property
    def queued(self) -> int:
        return len(self._waiting) + len(self._pending)

    def retry_after(self) -> float:
        """Seconds until a request sent now would likely get a sequence."""
        rounds = self.queued // self.config.max_sequences + 1
        return round(max(self._turn_s * rounds, 0.1), 1)

    def tokens_per_second(self) -> float:
        with self._lock:
            recent = list(self.counters.recent)
        now = time.monotonic()
        tokens = sum(n for t, n in recent if now - t <= RATE_WINDOW_S)
        return tokens / RATE_WINDOW_S

    def stop(self) -> None:
        """Stop the thread, fail what is left, free the context."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

        def closing() -> BackendError:
            return NotReady("the model is shutting down", retry_after=1.0)

        self._fail_live(closing)
        for job in self._take_all_queued():
            self._emit(job, closing())
        self._flush()
        for prototype in self._grammars.values():
            clib.sampler_free(prototype)
        self._grammars.clear()
        self._candidates.close()
        self._batch.close()
        clib.context_free(self._ctx)

    # --- the decode thread ----------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            try:
                busy = self._step()
            except Exception as exc:
                self._recover(exc)
                continue
            if not busy:
                self._wake.wait(IDLE_WAIT_S)
                self._wake.clear()

    def _recover(self, exc: Exception) -> None:
        """A step failed: fail the running requests, keep the queued ones, carry on."""
        log.exception("embedded decode step failed", error=str(exc))
        self.counters.engine_errors += 1
        message = f"the embedded engine failed: {exc}"
        self._fail_live(lambda: BackendError(message))
        self._flush()

    def _step(self) -> bool:
        """One scheduling round and at most one decode; False when there was nothing to do."""
        with self._lock:
            self._waiting.extend(self._pending)
            self._pending.clear()
        now = time.monotonic()
        self._drop_cancelled()
        self._expire_queued(now)
        self._admit()
        self._end_past_deadline(now)
        busy = self._build_batch()
        if busy:
            code = self._batch.decode(self._ctx)
            if code != 0:
                raise RuntimeError(f"llama_decode returned {code}")
            self._after_decode()
        self._flush()
        return busy

    def _drop_cancelled(self) -> None:
        for seq in [s for s in self._live if s.job.cancelled]:
            self._release(seq)
            self.counters.cancellations += 1
        kept = [job for job in self._waiting if not job.cancelled]
        self.counters.cancellations += len(self._waiting) - len(kept)
        self._waiting = deque(kept)

    def _expire_queued(self, now: float) -> None:
        kept: deque[Job] = deque()
        for job in self._waiting:
            if job.deadline is not None and now >= job.deadline:
                self.counters.queue_timeouts += 1
                self._emit(
                    job,
                    DeadlineExceeded(
                        "the request's deadline passed while it waited for the model",
                        retry_after=self.retry_after(),
                    ),
                )
            else:
                kept.append(job)
        self._waiting = kept

    def _admit(self) -> None:
        while self._waiting and self._free_ids:
            job = self._waiting[0]
            slot = self._acquire_prefix(job)
            cached = len(slot.tokens) if slot is not None else 0
            cells = len(job.tokens) - cached + job.params.max_tokens
            if not self._make_room(cells):
                if slot is not None:
                    self._prefixes.release(slot)
                if self._live:
                    return  # wait for running requests to free their cells
                self._waiting.popleft()
                self._fail(
                    job, InvalidRequest(f"the request needs {cells} KV cells of {self.n_ctx}")
                )
                continue
            self._waiting.popleft()
            try:
                sampler = SequenceSampler(job.params, self._grammar_for(job.grammar))
            except SchemaUnsupported as exc:
                if slot is not None:
                    self._prefixes.release(slot)
                self._fail(job, exc)
                continue
            seq_id = self._free_ids.pop()
            clib.memory_seq_rm(self._mem, seq_id)
            seq = _Sequence(
                job=job,
                seq_id=seq_id,
                sampler=sampler,
                detokenizer=Detokenizer(job.params.stop),
                slot=slot,
                cells=cells,
                started_at=time.monotonic(),
                phase=Phase.WAIT_PREFIX if slot is not None else Phase.PREFILL,
            )
            self._live.append(seq)
            self._reserved += cells
            self.counters.requests += 1
            if job.prefix is not None:
                hit = slot is not None and (slot.filled > 0 or slot.users > 1)
                self.counters.prefix_hits += hit
                self.counters.prefix_misses += not hit

    def _acquire_prefix(self, job: Job) -> PrefixSlot | None:
        if job.prefix is None:
            return None
        slot, evicted = self._prefixes.acquire(job.prefix)
        if evicted is not None:
            clib.memory_seq_rm(self._mem, evicted)
        return slot

    def _make_room(self, cells: int) -> bool:
        """Whether `cells` more fit, evicting unused cached prefixes if needed."""
        while self._reserved + self._prefixes.cells() + cells > self.n_ctx:
            evicted = self._prefixes.evict_one()
            if evicted is None:
                return False
            clib.memory_seq_rm(self._mem, evicted)
        return True

    def _grammar_for(self, gbnf: str | None) -> clib.SamplerPtr | None:
        """A fresh grammar sampler, cloned from a parsed prototype (parsing costs more)."""
        if gbnf is None:
            return None
        prototype = self._grammars.get(gbnf)
        if prototype is None:
            prototype = clib.sampler_grammar(self._model.vocab, gbnf)
            if prototype is None:
                raise SchemaUnsupported(
                    "llama.cpp could not parse the grammar made for this schema"
                )
            self._grammars[gbnf] = prototype
            if len(self._grammars) > GRAMMAR_PROTOTYPES:
                clib.sampler_free(self._grammars.popitem(last=False)[1])
        else:
            self._grammars.move_to_end(gbnf)
        return clib.sampler_clone(prototype)

    def _end_past_deadline(self, now: float) -> None:
        for seq in list(self._live):
            deadline = seq.job.deadline
            if deadline is not None and now >= deadline:
                self.counters.deadline_stops += 1
                self._finish(seq, "length", "deadline")

    def _build_batch(self) -> bool:
        batch = self._batch
        batch.clear()
        for seq in self._live:
            seq.row = -1
            seq.prefilling = 0
            if seq.phase is Phase.WAIT_PREFIX and seq.slot is not None and seq.slot.ready:
                # Share the decoded prefix: its cells get this sequence's id too.
                clib.memory_seq_cp(self._mem, seq.slot.seq_id, seq.seq_id, 0, len(seq.slot.tokens))
                seq.n_past = len(seq.slot.tokens)
                seq.phase = Phase.PREFILL
        for seq in [s for s in self._live if s.phase is Phase.GENERATE]:
            self._guarded(seq, self._add_generated)
        budget = min(batch.free, self.config.prefill_chunk)
        self._filling = []
        for slot in self._prefixes.slots():
            count = min(budget, len(slot.tokens) - slot.filled)
            if count > 0:
                chunk = slot.tokens[slot.filled : slot.filled + count]
                batch.add(chunk, slot.filled, slot.seq_id, output_last=False)
                self._filling.append((slot, count))
                budget -= count
        for seq in [s for s in self._live if s.phase is Phase.PREFILL]:
            seq.prefilling = min(budget, len(seq.job.tokens) - seq.n_past)
            if seq.prefilling > 0:
                budget -= seq.prefilling
                self._guarded(seq, self._add_prompt)
        return batch.size > 0

    def _add_generated(self, seq: _Sequence) -> None:
        seq.row = self._batch.add([seq.last_token], seq.n_past, seq.seq_id, output_last=True)

    def _add_prompt(self, seq: _Sequence) -> None:
        start, end = seq.n_past, seq.n_past + seq.prefilling
        done = end == len(seq.job.tokens)
        row = self._batch.add(seq.job.tokens[start:end], start, seq.seq_id, output_last=done)
        if done:
            seq.row = row

    def _after_decode(self) -> None:
        self.counters.steps += 1
        for slot, count in self._filling:
            slot.filled += count
        sampled = 0
        for seq in list(self._live):
            if seq.prefilling:
                seq.n_past += seq.prefilling
                if seq.n_past == len(seq.job.tokens):
                    seq.phase = Phase.GENERATE
            elif seq.phase is Phase.GENERATE and seq.row >= 0:
                seq.n_past += 1
            if seq.row >= 0 and self._guarded(seq, self._sample):
                sampled += 1
        now = time.monotonic()
        self.counters.tokens += sampled
        with self._lock:
            recent = self.counters.recent
            recent.append((now, sampled))
            while recent and now - recent[0][0] > RATE_WINDOW_S:
                recent.popleft()

    def _sample(self, seq: _Sequence) -> None:
        row = clib.logits_row(self._ctx, seq.row)
        if row is None:
            raise SamplingError(f"no logits for batch row {seq.row}")
        token = seq.sampler.sample(row, self._candidates)
        if token in self._model.eog:
            self._finish(seq, "stop")
            return
        seq.sampler.accept(token)
        seq.generated += 1
        seq.last_token = token
        text, stopped = seq.detokenizer.feed(self._model.pieces[token])
        if text:
            self._emit(seq.job, TextDelta(text))
        if stopped:
            self._finish(seq, "stop")
        elif seq.generated >= seq.job.params.max_tokens:
            self._finish(seq, "length")

    def _guarded(self, seq: _Sequence, action: _SeqAction) -> bool:
        """Run `action`; a bad row or sample fails this request only."""
        try:
            action(seq)
        except (BatchError, SamplingError) as exc:
            log.error("embedded request failed", request_id=seq.job.request_id, error=str(exc))
            self._release(seq)
            self._fail(seq.job, BackendError(f"generation failed: {exc}"))
            return False
        return True

    def _finish(self, seq: _Sequence, reason: FinishReason, cause: StopCause | None = None) -> None:
        tail = seq.detokenizer.flush()
        if tail:
            self._emit(seq.job, TextDelta(tail))
        self._emit(
            seq.job,
            Finished(
                finish_reason=reason,
                prompt_tokens=len(seq.job.tokens),
                completion_tokens=seq.generated,
                stop_cause=cause,
            ),
        )
        self.counters.completed += 1
        self._turn_s = 0.8 * self._turn_s + 0.2 * (time.monotonic() - seq.started_at)
        self._release(seq)

    def _release(self, seq: _Sequence) -> None:
        if seq not in self._live:
            return
        self._live.remove(seq)
        clib.memory_seq_rm(self._mem, seq.seq_id)
        seq.sampler.close()
        if seq.slot is not None:
            self._prefixes.release(seq.slot)
        self._free_ids.append(seq.seq_id)
        self._reserved -= seq.cells

    def _fail(self, job: Job, error: BackendError) -> None:
        self.counters.failures += 1
        self._emit(job, error)

    def _fail_live(self, error: Callable[[], BackendError]) -> None:
        """Fail every running request (each gets its own exception) and empty the KV cache."""
        for seq in list(self._live):
            self._release(seq)
            self._fail(seq.job, error())
        clib.memory_clear(self._mem)
        self._prefixes.clear()
        self._reserved = 0

    def _take_all_queued(self) -> Iterable[Job]:
        with self._lock:
            jobs = [*self._waiting, *self._pending]
            self._waiting.clear()
            self._pending.clear()
        return jobs

    def _emit(self, job: Job, outcome: Outcome) -> None:
        self._outbox.setdefault(job, []).append(outcome)

    def _flush(self) -> None:
        for job, outcomes in self._outbox.items():
            try:
                job.deliver(outcomes)
            except RuntimeError:  # the consumer's event loop is closed
                log.debug("embedded result dropped", request_id=job.request_id)
        self._outbox.clear()
