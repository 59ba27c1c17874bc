"""dm's Prometheus metrics, on a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6, 10)


class DmMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("dm_turns", "Turns answered", ["flow", "fallback"], registry=r)
        self.turn_seconds = Histogram(
            "dm_turn_seconds", "Whole turn latency in dm", buckets=LATENCY_BUCKETS, registry=r
        )
        self.added_seconds = Histogram(
            "dm_turn_added_seconds",
            "Turn latency dm adds on top of the LLM call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_seconds = Histogram(
            "dm_llm_seconds", "LLM call duration", buckets=LATENCY_BUCKETS, registry=r
        )
        self.llm_ttft_seconds = Histogram(
            "dm_llm_ttft_seconds", "LLM time to first token", buckets=LATENCY_BUCKETS, registry=r
        )
        self.fallbacks = Counter(
            "dm_fallbacks", "Turns answered with the scripted fallback", ["reason"], registry=r
        )
        self.sla_misses = Counter(
            "dm_sla_misses", "Turns answered after the turn deadline", registry=r
        )
        self.replays = Counter(
            "dm_turn_replays", "Retried turns answered from the idempotency record", registry=r
        )
        self.interrupts = Counter("dm_interrupts", "Barge-ins", ["outcome"], registry=r)
        self.calls_started = Counter("dm_calls_started", "Calls created", ["flow"], registry=r)
        self.calls_ended = Counter("dm_calls_ended", "Calls ended", ["reason"], registry=r)
        self.understood = Counter(
            "dm_turns_understood",
            "Turns by what decided them: rules (no LLM call) or llm",
            ["flow", "by"],
            registry=r,
        )
        self.transfers = Counter(
            "dm_transfers", "Calls handed to a person", ["flow", "reason"], registry=r
        )
        # Read from Redis at each scrape: an alert before maxmemory refuses writes.
        self.redis_used_memory = Gauge(
            "dm_redis_used_memory_bytes", "Memory Redis reports in use", registry=r
        )
        self.redis_maxmemory = Gauge(
            "dm_redis_maxmemory_bytes", "Redis maxmemory (0: no limit)", registry=r
        )
        self.prefills = Counter(
            "dm_prefills", "Prompt prefills asked of the LLM while the caller spoke", registry=r
        )
