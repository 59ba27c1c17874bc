"""Prometheus metrics of one app (a registry per app: several may share a test process).

Requests by endpoint and status, time to first token, decode rate, tokens,
finish reasons, early stops by reason (`disconnect`, `deadline`), and the
backend's queue depth, active requests and prefix cache read at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_local.backends.base import (
    Backend,
    BackendError,
    Finished,
    PrefixCacheStats,
    StreamEvent,
    TextDelta,
)

log = structlog.get_logger(__name__)

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0)
RATE_BUCKETS = (5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 1000)
DEADLINE_CODE = "deadline_exceeded"
# The status nginx logs for a client that went away before any answer; no response carries it.
CLIENT_CLOSED_REQUEST = 499


class BackendStatsCollector(Collector):
    """The backend's live numbers, read when Prometheus scrapes."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def collect(self) -> Iterable[Metric]:
        stats = self._backend.stats()
        yield GaugeMetricFamily(
            "llm_queue_depth", "Requests waiting for a generation slot.", value=stats.queue_depth
        )
        yield GaugeMetricFamily(
            "llm_active_requests", "Requests generating now.", value=stats.active
        )
        extra = GaugeMetricFamily(
            "llm_backend_stat", "Backend-specific live numbers.", labels=["name"]
        )
        for name, value in sorted(stats.extra.items()):
            extra.add_metric([name], value)
        yield extra
        if stats.prefix_cache is not None:
            yield from _prefix_cache_metrics(stats.prefix_cache)


def _prefix_cache_metrics(cache: PrefixCacheStats) -> Iterable[Metric]:
    for name, help_text, value in (
        ("lookups", "Requests that looked for a cached prompt prefix.", cache.lookups),
        ("hits", "Requests that found part of their prompt decoded.", cache.hits),
        ("prompt_tokens", "Prompt tokens of the requests that looked.", cache.prompt_tokens),
        ("cached_tokens", "Prompt tokens served from the cache.", cache.cached_tokens),
        ("evictions", "Cached prefixes evicted.", cache.evictions),
    ):
        yield CounterMetricFamily(f"llm_prefix_cache_{name}", help_text, value=value)
    for name, help_text, value in (
        ("cells", "KV cells in use by running requests and cached prefixes.", cache.cells),
        ("idle_cells", "KV cells held by cached prefixes alone.", cache.idle_cells),
        ("sequences", "Cached prefixes kept.", cache.sequences),
    ):
        yield GaugeMetricFamily(f"llm_prefix_cache_{name}", help_text, value=value)
    prefills = CounterMetricFamily(
        "llm_prefill_requests", "POST /v1/prefill requests by outcome.", labels=["outcome"]
    )
    for outcome, count in sorted(cache.prefills.items()):
        prefills.add_metric([outcome], count)
    yield prefills


class LlmMetrics:
    def __init__(self, backend: Backend) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "llm_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.ttft = Histogram(
            "llm_time_to_first_token_seconds",
            "From the request's arrival to its first generated text.",
            ["endpoint"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.decode_rate = Histogram(
            "llm_decode_tokens_per_second",
            "Tokens per second of one generation after its first token.",
            buckets=RATE_BUCKETS,
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "llm_prompt_tokens", "Prompt tokens processed.", ["endpoint"], registry=registry
        )
        self.completion_tokens = Counter(
            "llm_completion_tokens", "Tokens generated.", ["endpoint"], registry=registry
        )
        self.generations = Counter(
            "llm_generations",
            "Generations that ended, by finish reason.",
            ["endpoint", "finish_reason"],
            registry=registry,
        )
        self.cancellations = Counter(
            "llm_cancellations",
            "Generations stopped early: the client went away or the deadline passed.",
            ["reason"],
            registry=registry,
        )
        self.errors = Counter(
            "llm_generation_errors",
            "Generations that failed, by error code.",
            ["code"],
            registry=registry,
        )
        registry.register(BackendStatsCollector(backend))

    def watch(self, endpoint: str, request_id: str) -> GenerationWatch:
        return GenerationWatch(self, endpoint, request_id)


class GenerationWatch:
    """Observes one generation: metrics, and one log line when it ends (never its text)."""

    def __init__(self, metrics: LlmMetrics, endpoint: str, request_id: str) -> None:
        self._metrics = metrics
        self._endpoint = endpoint
        self._request_id = request_id
        self._started = time.monotonic()
        self._first_text: float | None = None
        self._ended = False

    def event(self, event: StreamEvent) -> None:
        now = time.monotonic()
        if isinstance(event, TextDelta):
            if self._first_text is None:
                self._first_text = now
                self._metrics.ttft.labels(self._endpoint).observe(now - self._started)
            return
        self._finished(event, now)

    def _finished(self, event: Finished, now: float) -> None:
        if self._ended:
            return
        self._ended = True
        metrics = self._metrics
        metrics.prompt_tokens.labels(self._endpoint).inc(event.prompt_tokens)
        metrics.completion_tokens.labels(self._endpoint).inc(event.completion_tokens)
        metrics.generations.labels(self._endpoint, event.finish_reason).inc()
        if event.stop_cause == "deadline":
            metrics.cancellations.labels("deadline").inc()
        first = self._first_text
        if first is not None and event.completion_tokens > 1 and now > first:
            metrics.decode_rate.observe((event.completion_tokens - 1) / (now - first))
        self._log(
            event.stop_cause or event.finish_reason,
            now,
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
        )

    def failed(self, exc: BackendError) -> None:
        if self._ended:
            return
        self._ended = True
        self._metrics.errors.labels(exc.code).inc()
        if exc.code == DEADLINE_CODE:
            self._metrics.cancellations.labels("deadline").inc()
        self._log(exc.code, time.monotonic(), status=exc.status)

    def disconnected(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._metrics.cancellations.labels("disconnect").inc()
        self._log("disconnect", time.monotonic())

    def _log(self, outcome: str, now: float, **fields: int) -> None:
        first = self._first_text
        log.info(
            "generation",
            request_id=self._request_id,
            endpoint=self._endpoint,
            outcome=outcome,
            ttft_ms=None if first is None else round((first - self._started) * 1000, 1),
            duration_ms=round((now - self._started) * 1000, 1),
            **fields,
        )


class RequestCounter:
    """Counts every response by route and status, 413s and 500s included."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            status = status or 500
            raise
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.counter.labels(endpoint, str(status or CLIENT_CLOSED_REQUEST)).inc()
