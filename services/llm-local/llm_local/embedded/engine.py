"""The decode loop: one thread owns the llama context and decodes every live sequence.

Each step builds one batch: one token per generating sequence, then prompt chunks of
new requests in arrival order up to a budget, then, at lower priority, a chunk of a
background prefill; runs one `llama_decode`, and samples a token for every sequence
whose output row it asked for.

Prompts share KV cells through the prefix cache (prefix_cache.py). A new request
copies the longest decoded prefix of its prompt, from a finished request kept in the
cache or from a running one, and decodes only the rest; while a running request is
still decoding a prompt they share, it follows that one, copying its cells as they
come, instead of decoding them twice. A finished request's cells stay cached until
evicted, least recently used first, when sequence ids or cells run short, or when
the cells only cached prefixes hold exceed their budget: every cell in the KV cache
costs attention time on every step.

Requests wait in a queue for a free sequence and enough free KV cells; a request's
cells are reserved up front (prompt rest + max_tokens) so a decode never runs out of
room halfway. Schema-bound requests keep their JSON closable within max_tokens
(json_budget.py).

The consumer side (asyncio) only appends jobs and sets `Job.cancelled`; all llama
state is touched by this thread alone.
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
from llm_local.embedded.jobs import Job, Outcome, PrefillJob
from llm_local.embedded.json_budget import JsonBudget
from llm_local.embedded.kv_space import KvSpace
from llm_local.embedded.model import LoadedModel, ModelLoadError
from llm_local.embedded.prefills import Prefills, answer
from llm_local.embedded.prefix_cache import MIN_SHARED_TOKENS, common_prefix
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
    # Finished requests kept as cached prefixes (each holds a sequence id).
    cache_sequences: int = 32
    # KV cells that cached prefixes alone may hold. Attention runs over every cell in
    # use: on 2 cores a step took ~12 ms with an empty cache, ~18 ms with 1,000 cells.
    cache_cells: int = 1536
    # Prompt tokens decoded per step across new requests. Small: requests that arrive
    # together get their first tokens one after another instead of all at the end
    # (on 2 cores, 32 gave a lower first-token p50 at 8 clients than 128), and
    # running streams stall for at most one chunk.
    prefill_chunk: int = 32
    # Prefill requests waiting for the background; more are refused.
    max_prefills: int = 4
    # Background prefill tokens per step while requests are decoded. Each costs every
    # running stream ~6 ms a token on 2 cores (a one-token step takes ~9 ms).
    background_chunk: int = 1

    @property
    def n_seq_max(self) -> int:
        return self.max_sequences + self.cache_sequences + 1  # + the background prefill


class Phase(enum.Enum):
    FOLLOW = "follow"  # copying a running request's prompt cells as it decodes them
    PREFILL = "prefill"
    GENERATE = "generate"


@dataclass(eq=False, slots=True)
class _Sequence:
    job: Job
    seq_id: int
    sampler: SequenceSampler
    detokenizer: Detokenizer
    json: JsonBudget | None
    cells: int  # KV cells it may still add (reserved)
    started_at: float
    phase: Phase
    n_past: int  # positions in the KV cache
    cached: int  # prompt tokens copied rather than decoded
    leader: _Sequence | None = None  # FOLLOW: whose cells it copies...
    follow_to: int = 0  # ...up to this position
    generated: int = 0
    last_token: int = -1
    row: int = -1  # batch row of its logits this step; -1: none
    prefilling: int = 0  # prompt tokens in this step's batch


@dataclass(frozen=True, slots=True)
class _Placement:
    seq_id: int
    copied: int
    cells: int
    leader: _Sequence | None
    follow_to: int


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
    steps: int = 0
    tokens: int = 0
    recent: deque[tuple[float, int]] = field(default_factory=deque)
    # The prefix cache, counted when a request ends.
    cache_lookups: int = 0
    cache_hits: int = 0
    cache_prompt_tokens: int = 0
    cache_cached_tokens: int = 0
    # Its levels, as of the last step (read from other threads).
    cache_evictions: int = 0
    cache_cells: int = 0
    cache_idle_cells: int = 0
    cache_sequences: int = 0


class Engine:
    """Owns the llama context and the decode thread."""

    def __init__(self, model: LoadedModel, config: EngineConfig) -> None:
        self.config = config
        self._model = model
        n_seq_max = config.n_seq_max
        if n_seq_max > clib.max_parallel_sequences():
            raise ValueError(
                f"max_sequences + cached prefixes + 1 = {n_seq_max} exceeds llama.cpp's "
                f"{clib.max_parallel_sequences()} sequences"
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
        self._kv = KvSpace(
            clib.memory(ctx),
            n_ctx=self.n_ctx,
            n_seq_max=n_seq_max,
            max_cached=config.cache_sequences,
            max_idle_cells=config.cache_cells,
        )
        self._grammars: OrderedDict[str, clib.SamplerPtr] = OrderedDict()
        self._live: list[_Sequence] = []
        self._waiting: deque[Job] = deque()
        self._pending: deque[Job] = deque()
        self._new_prefills: deque[PrefillJob] = deque()
        # Read from other threads for stats: its counters only.
        self.prefills = Prefills(self._kv, config.max_prefills)
        self._outbox: dict[Job, list[Outcome]] = {}
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

    def submit_prefill(self, job: PrefillJob) -> None:
        with self._lock:
            self._new_prefills.append(job)
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
        for prefill in self._new_prefills:
            answer(prefill, closing())
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
        self._accept_prefills()
        self._start_background()
        self._end_past_deadline(now)
        busy = self._build_batch()
        if busy:
            code = self._batch.decode(self._ctx)
            if code != 0:
                raise RuntimeError(f"llama_decode returned {code}")
            self._after_decode()
        self._publish_cache()
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

    # --- admission: sequence ids, shared prefixes, KV cells ----------------------

    def _admit(self) -> None:
        while self._waiting and len(self._live) < self.config.max_sequences:
            job = self._waiting[0]
            self.prefills.yield_to(job.tokens)
            placed = self._place(job)
            if placed is None:
                if self._live:
                    return  # wait for running requests to free their cells
                self._waiting.popleft()
                cells = len(job.tokens) + job.params.max_tokens
                self._fail(
                    job, InvalidRequest(f"the request needs {cells} KV cells of {self.n_ctx}")
                )
                continue
            self._waiting.popleft()
            try:
                sampler = SequenceSampler(job.params, self._grammar_for(job.grammar))
            except SchemaUnsupported as exc:
                self._kv.discard(placed.seq_id)
                self._fail(job, exc)
                continue
            schema = job.schema
            self._live.append(
                _Sequence(
                    job=job,
                    seq_id=placed.seq_id,
                    sampler=sampler,
                    detokenizer=Detokenizer(job.params.stop),
                    json=(
                        JsonBudget(schema, job.params.max_tokens, self._model.count_tokens)
                        if schema is not None
                        else None
                    ),
                    cells=placed.cells,
                    started_at=time.monotonic(),
                    phase=Phase.FOLLOW if placed.leader is not None else Phase.PREFILL,
                    n_past=placed.copied,
                    cached=placed.copied,
                    leader=placed.leader,
                    follow_to=placed.follow_to,
                )
            )
            self.counters.requests += 1

    def _place(self, job: Job) -> _Placement | None:
        """A sequence id for `job` holding the longest decoded prefix of its prompt (or
        following a running request that is decoding it), with its cells reserved."""
        seq_id = self._kv.take_id()
        if seq_id is None:
            return None
        tokens = job.tokens
        match = self._kv.cache.match(tokens)
        # The last prompt token is always decoded: its logits give the first token.
        copied, source = min(match.length, len(tokens) - 1), match.source
        if copied < MIN_SHARED_TOKENS:
            copied = 0
        leader, follow_to = self._leader(tokens, copied)
        if leader is not None:
            copied, source = min(leader.n_past, follow_to), leader.seq_id
        if copied and source is not None:
            self._kv.copy(seq_id, source, 0, copied)
        cells = len(tokens) - copied + job.params.max_tokens
        if not self._make_room(cells):
            self._kv.discard(seq_id)
            return None
        return _Placement(seq_id, copied, cells, leader, follow_to)

    def _leader(self, tokens: list[int], copied: int) -> tuple[_Sequence | None, int]:
        """The running request decoding the longest stretch of `tokens` beyond `copied`
        cells, and how far they share; (None, 0) when none shares enough."""
        best: _Sequence | None = None
        reach = copied + MIN_SHARED_TOKENS - 1
        for seq in self._live:
            if seq.phase is Phase.PREFILL and seq.n_past >= copied:
                shared = min(common_prefix(seq.job.tokens, tokens), len(tokens) - 1)
                if shared > reach:
                    best, reach = seq, shared
        return (best, reach) if best is not None else (None, 0)

    def _make_room(self, cells: int) -> bool:
        """Whether `cells` more fit, evicting unused cached prefixes, then stopping the
        background prefill, if needed."""
        while not self._kv.room(cells, self._reserved() + self.prefills.reserved):
            if not self.prefills.running:
                return False
            self.prefills.stop()
        return True

    def _reserved(self) -> int:
        """KV cells running requests may still add."""
        return sum(s.cells for s in self._live)

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

    # --- prefill requests ----------------------------------------------------------

    def _accept_prefills(self) -> None:
        while True:
            with self._lock:
                if not self._new_prefills:
                    return
                job = self._new_prefills.popleft()
            waiting = bool(self._waiting)
            self.prefills.offer(job, requests_waiting=waiting, reserved=self._reserved())

    def _start_background(self) -> None:
        if not self._waiting:
            self.prefills.start(self._reserved())

    # --- one step -----------------------------------------------------------------

    def _end_past_deadline(self, now: float) -> None:
        for seq in list(self._live):
            deadline = seq.job.deadline
            if deadline is not None and now >= deadline:
                self.counters.deadline_stops += 1
                self._finish(seq, "length", "deadline")

    def _follow(self) -> None:
        """Followers copy what their leaders decoded; then, or once a leader is gone,
        they decode the rest themselves."""
        for seq in self._live:
            leader = seq.leader
            if seq.phase is not Phase.FOLLOW or leader is None:
                continue
            present = leader in self._live
            reach = min(leader.n_past, seq.follow_to) if present else seq.n_past
            if reach > seq.n_past:
                self._kv.copy(seq.seq_id, leader.seq_id, seq.n_past, reach)
                seq.cells -= reach - seq.n_past
                seq.cached += reach - seq.n_past
                seq.n_past = reach
            if not present or reach >= seq.follow_to:
                seq.phase, seq.leader = Phase.PREFILL, None

    def _build_batch(self) -> bool:
        batch = self._batch
        batch.clear()
        for seq in self._live:
            seq.row = -1
            seq.prefilling = 0
        self._follow()
        for seq in [s for s in self._live if s.phase is Phase.GENERATE]:
            self._guarded(seq, self._add_generated)
        budget = min(batch.free, self.config.prefill_chunk)
        for seq in [s for s in self._live if s.phase is Phase.PREFILL]:
            seq.prefilling = min(budget, len(seq.job.tokens) - seq.n_past)
            if seq.prefilling > 0:
                budget -= seq.prefilling
                self._guarded(seq, self._add_prompt)
        allowed = self.config.background_chunk if self._live else budget
        self.prefills.add_chunk(batch, min(budget, allowed))
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
        self.prefills.after_decode()
        sampled = 0
        for seq in list(self._live):
            if seq.prefilling:
                start, end = seq.n_past, seq.n_past + seq.prefilling
                self._kv.cache.extend(seq.seq_id, seq.job.tokens[start:end])
                seq.n_past, seq.cells = end, seq.cells - seq.prefilling
                if seq.n_past == len(seq.job.tokens):
                    seq.phase = Phase.GENERATE
            elif seq.phase is Phase.GENERATE and seq.row >= 0:
                self._kv.cache.extend(seq.seq_id, [seq.last_token])
                seq.n_past, seq.cells = seq.n_past + 1, seq.cells - 1
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
        piece = self._model.pieces[token]
        if seq.json is not None and not seq.json.admit(piece, seq.generated + 1):
            self._finish(seq, "length")  # closing after this token would not fit the cap
            return
        seq.sampler.accept(token)
        seq.generated += 1
        seq.last_token = token
        text, stopped = seq.detokenizer.feed(piece)
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
            self._release(seq, keep=False)
            self._fail(seq.job, BackendError(f"generation failed: {exc}"))
            return False
        return True

    def _finish(self, seq: _Sequence, reason: FinishReason, cause: StopCause | None = None) -> None:
        cut = seq.json if reason == "length" else None  # a schema-bound answer cut short
        closing, closing_tokens = cut.closing() if cut is not None else ("", 0)
        tail = seq.detokenizer.flush(drop_partial=cut is not None) + closing
        if tail:
            self._emit(seq.job, TextDelta(tail))
        self._emit(
            seq.job,
            Finished(
                finish_reason=reason,
                prompt_tokens=len(seq.job.tokens),
                completion_tokens=seq.generated + closing_tokens,
                stop_cause=cause,
                cached_tokens=seq.cached,
            ),
        )
        self.counters.completed += 1
        self._turn_s = 0.8 * self._turn_s + 0.2 * (time.monotonic() - seq.started_at)
        self._release(seq)

    def _release(self, seq: _Sequence, *, keep: bool = True) -> None:
        """Take `seq` off the live list; its cells stay cached unless `keep` is false."""
        if seq not in self._live:
            return
        self._live.remove(seq)
        seq.sampler.close()
        counters = self.counters
        counters.cache_lookups += 1
        counters.cache_hits += seq.cached > 0
        counters.cache_prompt_tokens += len(seq.job.tokens)
        counters.cache_cached_tokens += seq.cached
        if keep:
            self._kv.keep(seq.seq_id)
        else:
            self._kv.discard(seq.seq_id)

    def _publish_cache(self) -> None:
        counters, cache = self.counters, self._kv.cache
        counters.cache_evictions = self._kv.evictions
        counters.cache_cells = cache.cells
        counters.cache_idle_cells = cache.idle_cells()
        counters.cache_sequences = cache.cached

    def _fail(self, job: Job, error: BackendError) -> None:
        self.counters.failures += 1
        self._emit(job, error)

    def _fail_live(self, error: Callable[[], BackendError]) -> None:
        """Fail every running request (each gets its own exception) and empty the KV cache."""
        for seq in self._live:
            seq.sampler.close()
            self._fail(seq.job, error())
        self._live.clear()
        self.prefills.forget_running()
        self._kv.clear()

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
