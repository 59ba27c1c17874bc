"""`POST /v1/prefill` inside the engine: a bounded queue of prompts to decode into the
prefix cache, and the one being decoded, behind the live requests.

A prefill is answered as soon as the decode thread looks at it: queued; merged into
the queued or running prefill of the same conversation (a newer partial transcript
replaces an older one); already cached; or refused while requests wait for a sequence
or the queue is full. The running prefill stops, keeping what it decoded cached, when
a request needs tokens it has not reached: the request decodes them itself, at its
own priority. Owned by the decode thread.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import structlog

from llm_local.backends.base import BackendError, PrefillResult
from llm_local.embedded.batch import TokenBatch
from llm_local.embedded.jobs import PrefillJob
from llm_local.embedded.kv_space import KvSpace
from llm_local.embedded.prefix_cache import MIN_SHARED_TOKENS, common_prefix

log = structlog.get_logger("llm_local.embedded")

# What became of prefill requests: queued; merged into one of the same conversation;
# already cached; refused under load; accepted, then dropped for lack of KV cells.
OUTCOMES = ("queued", "coalesced", "cached", "dropped", "abandoned")


def answer(job: PrefillJob, result: PrefillResult | BackendError) -> None:
    try:
        job.answer(result)
    except RuntimeError:  # the consumer's event loop is closed
        log.debug("embedded prefill answer dropped")


@dataclass(eq=False, slots=True)
class _Running:
    seq_id: int
    tokens: list[int]
    n_past: int
    cells: int  # KV cells it may still add (reserved)
    chunk: int = 0  # tokens in this step's batch


class Prefills:
    def __init__(self, kv: KvSpace, max_queued: int) -> None:
        self._kv = kv
        self._max_queued = max_queued
        self._queue: deque[PrefillJob] = deque()
        self._running: _Running | None = None
        self.outcomes: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        self.decoded = 0  # tokens decoded in the background

    @property
    def running(self) -> bool:
        return self._running is not None

    @property
    def reserved(self) -> int:
        """KV cells the running prefill may still add."""
        return self._running.cells if self._running is not None else 0

    def offer(self, job: PrefillJob, *, requests_waiting: bool, reserved: int) -> None:
        """Queue, merge or refuse `job`, and answer it. `reserved`: cells running
        requests may still add."""
        tokens = job.tokens
        cached = self._kv.cache.match(tokens).length
        running = self._running
        if cached >= len(tokens):
            outcome, queued = "cached", False
        elif (
            running is not None
            and common_prefix(running.tokens, tokens) >= max(running.n_past, cached + 1)
            and self._retarget(running, tokens, reserved)
        ):
            outcome, queued = "coalesced", True
            cached = max(cached, running.n_past)
        elif self._replace_queued(job, cached):
            outcome, queued = "coalesced", True
        elif requests_waiting or len(self._queue) >= self._max_queued:
            outcome, queued = "dropped", False
        else:
            self._queue.append(job)
            outcome, queued = "queued", True
        self.outcomes[outcome] += 1
        rest = len(tokens) - cached if queued else 0
        answer(job, PrefillResult(len(tokens), cached, rest, queued))

    def _retarget(self, running: _Running, tokens: list[int], reserved: int) -> bool:
        """Point the running prefill at `tokens`, which start with what it decoded."""
        more = len(tokens) - running.n_past - running.cells
        if more > 0 and not self._kv.room(more, reserved + running.cells):
            return False
        running.tokens = tokens
        running.cells = len(tokens) - running.n_past
        return True

    def _replace_queued(self, job: PrefillJob, cached: int) -> bool:
        """Put `job` in the place of a queued prefill sharing more than the cache holds
        (the same conversation, caught again a moment later)."""
        for index, queued in enumerate(self._queue):
            if common_prefix(queued.tokens, job.tokens) > cached:
                self._queue[index] = job
                return True
        return False

    def start(self, reserved: int) -> None:
        """Start decoding the next queued prefill, if none runs."""
        while self._running is None and self._queue:
            tokens = self._queue.popleft().tokens
            match = self._kv.cache.match(tokens)
            if match.length >= len(tokens):
                continue
            seq_id = self._kv.take_id()
            if seq_id is None:
                return
            copied = match.length if match.length >= MIN_SHARED_TOKENS else 0
            if copied and match.source is not None:
                self._kv.copy(seq_id, match.source, 0, copied)
            if not self._kv.room(len(tokens) - copied, reserved):
                self._kv.discard(seq_id)
                self.outcomes["abandoned"] += 1
                continue
            self._running = _Running(seq_id, tokens, copied, len(tokens) - copied)

    def stop(self) -> None:
        """End the running prefill; what it decoded stays cached."""
        running, self._running = self._running, None
        if running is not None:
            self._kv.keep(running.seq_id)

    def yield_to(self, tokens: list[int]) -> None:
        """A request starts with `tokens`: stop the running prefill if the request
        needs cells it has not decoded yet."""
        running = self._running
        if running is not None and common_prefix(running.tokens, tokens) > running.n_past:
            self.stop()

    def add_chunk(self, batch: TokenBatch, budget: int) -> None:
        """Up to `budget` tokens of the running prefill into this step's batch."""
        running = self._running
        if running is None:
            return
        running.chunk = min(budget, len(running.tokens) - running.n_past)
        if running.chunk > 0:
            start = running.n_past
            chunk = running.tokens[start : start + running.chunk]
            batch.add(chunk, start, running.seq_id, output_last=False)

    def after_decode(self) -> None:
        running = self._running
        if running is None or not running.chunk:
            return
        start, end = running.n_past, running.n_past + running.chunk
        self._kv.cache.extend(running.seq_id, running.tokens[start:end])
        running.n_past, running.cells = end, running.cells - running.chunk
        self.decoded += running.chunk
        running.chunk = 0
        if end == len(running.tokens):
            self.stop()

    def forget_running(self) -> None:
        """The KV cache was emptied under the running prefill (the queue stays)."""
        self._running = None
