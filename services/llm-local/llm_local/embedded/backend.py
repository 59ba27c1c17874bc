"""`EmbeddedBackend`: the `Backend` interface over the in-process llama.cpp engine."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import structlog

from llm_local.backends.base import (
    Backend,
    BackendError,
    BackendStats,
    DeadlineExceeded,
    Embeddings,
    Finished,
    GenerationRequest,
    InvalidRequest,
    Message,
    NotReady,
    Overloaded,
    PrefillResult,
    PrefixCacheStats,
    StreamEvent,
)
from llm_local.embedded.embeddings import EmbeddingContext
from llm_local.embedded.engine import Engine, EngineConfig
from llm_local.embedded.grammar import GrammarCache
from llm_local.embedded.jobs import Deliver, Job, Outcome, PrefillJob
from llm_local.embedded.model import LoadedModel, load_model
from llm_local.embedded.model_file import resolve_model_path
from llm_local.embedded.validate import validate
from llm_local.settings import LlmSettings

log = structlog.get_logger("llm_local.embedded")

# The decode thread answers a prefill request within a step; this only guards a stuck one.
PREFILL_ANSWER_TIMEOUT_S = 10.0


class EmbeddedBackend(Backend):
    """llama.cpp in-process; up to LLM_MAX_SEQUENCES requests decoded together."""

    name = "embedded"

    def __init__(self, settings: LlmSettings) -> None:
        self._settings = settings
        self._config = EngineConfig(
            n_ctx=settings.llm_n_ctx,
            n_threads=settings.llm_n_threads,
            n_batch=settings.llm_n_batch,
            max_sequences=settings.llm_max_sequences,
            grammar_top_k=settings.llm_grammar_top_k,
            cache_sequences=settings.llm_prefix_cache_slots,
            cache_cells=settings.llm_prefix_cache_cells,
            prefill_chunk=settings.llm_prefill_chunk,
            max_prefills=settings.llm_max_prefills,
            background_chunk=settings.llm_prefill_background_chunk,
        )
        self._grammars = GrammarCache()
        self._model: LoadedModel | None = None
        self._engine: Engine | None = None
        self._embeddings: EmbeddingContext | None = None
        self._inflight = 0  # streams between submission and their end (event loop only)
        self._schema_violations = 0
        self._prefills_waiting = 0  # prefill requests awaiting the decode thread's answer

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        path = resolve_model_path(self._settings.llm_model_path)
        model, engine = await asyncio.to_thread(self._load, path)
        engine.start()
        self._model, self._engine = model, engine
        log.info(
            "embedded model loaded",
            model=self.model,
            file=path.name,
            n_ctx=engine.n_ctx,
            max_sequences=self._config.max_sequences,
        )

    def _load(self, path: Path) -> tuple[LoadedModel, Engine]:
        model = load_model(path)
        try:
            return model, Engine(model, self._config)
        except Exception:
            model.free()
            raise

    async def close(self) -> None:
        engine, embeddings, model = self._engine, self._embeddings, self._model
        self._engine = self._embeddings = self._model = None
        if engine is not None:
            await asyncio.to_thread(engine.stop)
        if embeddings is not None:
            await asyncio.to_thread(embeddings.close)
        if model is not None:
            model.free()

    @property
    def ready(self) -> bool:
        return self._engine is not None

    @property
    def model(self) -> str:
        return self._settings.model_name

    # --- generation --------------------------------------------------------------

    def check_schema(self, schema: dict[str, Any]) -> None:
        self._grammars.get(schema)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamEvent, None]:
        engine, model = self._running()
        outcomes: asyncio.Queue[list[Outcome]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def deliver(items: list[Outcome]) -> None:
            loop.call_soon_threadsafe(outcomes.put_nowait, items)

        job = self._job(request, model, engine.n_ctx, deliver)
        limit = self._config.max_sequences + self._settings.llm_max_queue
        if self._inflight >= limit:
            raise Overloaded(
                f"{self._inflight} requests are running or queued (limit {limit})",
                retry_after=engine.retry_after(),
            )
        if job.deadline is not None and job.deadline <= time.monotonic():
            raise DeadlineExceeded("the request's deadline has already passed")
        self._inflight += 1
        engine.submit(job)
        text: list[str] = []
        finished = False
        try:
            while not finished:
                for outcome in await outcomes.get():
                    if isinstance(outcome, Exception):
                        finished = True
                        raise outcome
                    if isinstance(outcome, Finished):
                        finished = True
                        self._check_output(request, "".join(text), outcome)
                    elif request.json_schema is not None:
                        text.append(outcome.text)
                    yield outcome
        finally:
            self._inflight -= 1
            if not finished:
                # The consumer went away: the decode thread drops the sequence next step.
                job.cancelled = True
                engine.wake()

    def _running(self) -> tuple[Engine, LoadedModel]:
        if self._engine is None or self._model is None:
            raise NotReady("the model is loading", retry_after=1.0)
        return self._engine, self._model

    def _job(
        self, request: GenerationRequest, model: LoadedModel, n_ctx: int, deliver: Deliver
    ) -> Job:
        """Tokenize and check a request."""
        params = request.params
        if params.max_tokens < 1:
            raise InvalidRequest("max_tokens must be at least 1")
        if request.messages is not None and request.prompt is None:
            tokens = self._chat_tokens(model, request.messages)
        elif request.prompt is not None and request.messages is None:
            tokens = model.tokenize(request.prompt, special=False)
        else:
            raise InvalidRequest("a request needs exactly one of messages and prompt")
        if not tokens:
            raise InvalidRequest("the prompt is empty")
        if len(tokens) + params.max_tokens > n_ctx:
            raise InvalidRequest(
                f"the prompt ({len(tokens)} tokens) plus max_tokens ({params.max_tokens}) "
                f"exceeds the context of {n_ctx} tokens"
            )
        schema = request.json_schema
        compiled = self._grammars.get(schema) if schema is not None else None
        return Job(
            request_id=request.request_id,
            tokens=tokens,
            params=params,
            deliver=deliver,
            grammar=compiled.gbnf if compiled is not None else None,
            schema=compiled.schema if compiled is not None else None,
            deadline=request.deadline,
        )

    @staticmethod
    def _chat_tokens(model: LoadedModel, messages: Sequence[Message]) -> list[int]:
        return model.tokenize(model.template.render(messages), special=True)

    def _check_output(self, request: GenerationRequest, text: str, finished: Finished) -> None:
        """Count schema-bound outputs that fail their schema (a grammar or closing bug;
        a stop string may cut one on purpose)."""
        if request.json_schema is None or (
            finished.finish_reason == "stop" and request.params.stop
        ):
            return
        try:
            error = validate(json.loads(text), request.json_schema)
        except ValueError as exc:
            error = f"not JSON: {exc}"
        if error is not None:
            self._schema_violations += 1
            log.warning(
                "embedded output fails its schema", request_id=request.request_id, error=error
            )

    # --- prefill ------------------------------------------------------------------

    async def prefill(self, messages: Sequence[Message]) -> PrefillResult:
        engine, model = self._running()
        tokens = self._chat_tokens(model, messages)
        if len(tokens) >= engine.n_ctx:
            raise InvalidRequest(
                f"the prompt ({len(tokens)} tokens) exceeds the context of {engine.n_ctx} tokens"
            )
        if self._prefills_waiting >= self._config.max_prefills + self._config.max_sequences:
            # The decode thread is behind: do not stack more answers on it.
            return PrefillResult(len(tokens), 0, 0, queued=False)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[PrefillResult | BackendError] = loop.create_future()

        def settle(result: PrefillResult | BackendError) -> None:
            if not answer.done():  # it may have timed out
                answer.set_result(result)

        def deliver(result: PrefillResult | BackendError) -> None:
            loop.call_soon_threadsafe(settle, result)

        self._prefills_waiting += 1
        try:
            engine.submit_prefill(PrefillJob(tokens, deliver))
            async with asyncio.timeout(PREFILL_ANSWER_TIMEOUT_S):
                result = await answer
        except TimeoutError:
            raise NotReady("the model did not take the prefill in time", retry_after=1.0) from None
        finally:
            self._prefills_waiting -= 1
        if isinstance(result, BackendError):
            raise result
        return result

    # --- embeddings --------------------------------------------------------------

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        _, model = self._running()
        if self._embeddings is None:
            self._embeddings = EmbeddingContext(
                model, n_ctx=self._settings.llm_n_ctx, n_threads=self._settings.llm_n_threads
            )
        return await asyncio.to_thread(self._embeddings.embed, list(inputs))

    # --- introspection -------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "backend": self.name,
            "model": self.model,
            "max_sequences": self._config.max_sequences,
            "max_queue": self._settings.llm_max_queue,
            "n_threads": self._config.n_threads,
            "n_batch": self._config.n_batch,
            "n_ctx": self._engine.n_ctx if self._engine else self._config.n_ctx,
            "kv_layout": "unified",
            "prefix_cache_slots": self._config.cache_sequences,
            "prefix_cache_cells": self._config.cache_cells,
            "max_prefills": self._config.max_prefills,
            "prefill_background_chunk": self._config.background_chunk,
            "grammar_top_k": self._config.grammar_top_k,
            "prefill_chunk": self._config.prefill_chunk,
        }
        if self._model is not None:
            info.update(model_file=self._model.path.name, model_description=self._model.description)
        return info

    def stats(self) -> BackendStats:
        engine = self._engine
        if engine is None:
            return BackendStats()
        counters = engine.counters
        return BackendStats(
            queue_depth=engine.queued,
            active=engine.active,
            extra={
                "tokens_per_second": engine.tokens_per_second(),
                "requests": counters.requests,
                "completed": counters.completed,
                "cancellations": counters.cancellations,
                "deadline_stops": counters.deadline_stops,
                "queue_timeouts": counters.queue_timeouts,
                "failures": counters.failures,
                "engine_errors": counters.engine_errors,
                "schema_violations": self._schema_violations,
                "decode_steps": counters.steps,
                "generated_tokens": counters.tokens,
                "prefill_tokens": engine.prefills.decoded,
            },
            prefix_cache=PrefixCacheStats(
                lookups=counters.cache_lookups,
                hits=counters.cache_hits,
                prompt_tokens=counters.cache_prompt_tokens,
                cached_tokens=counters.cache_cached_tokens,
                cells=counters.cache_cells,
                idle_cells=counters.cache_idle_cells,
                sequences=counters.cache_sequences,
                evictions=counters.cache_evictions,
                prefills=dict(engine.prefills.outcomes),
            ),
        )
