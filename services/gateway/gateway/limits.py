"""Token-bucket rate limits per API key and per (key, call), in this gateway process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
SWEEP_EVERY = 4096  # takes between sweeps of idle buckets


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per key: `rate` tokens a second, holding at most `burst`.

    A bucket idle long enough to be full again is indistinguishable from a new one,
    so sweeps drop those and memory follows the keys active lately.
    """

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._takes = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Spend a token: 0.0 if there was one, else the seconds until there will be."""
        now = self._clock()
        self._takes += 1
        if self._takes % SWEEP_EVERY == 0:
            self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        refill_s = self.burst / self.rate
        idle = [key for key, b in self._buckets.items() if now - b.updated >= refill_s]
        for key in idle:
            del self._buckets[key]


class RateLimits:
    """The per-key and per-(key, call) buckets together.

    A call's bucket is the key's own: another key naming the call spends from its own
    bucket, so it cannot use up the owner's and get the owner's socket closed.
    """

    def __init__(self, per_key: TokenBuckets, per_call: TokenBuckets) -> None:
        self.per_key = per_key
        self.per_call = per_call

    def admit(self, key: str, call_id: str | None) -> float:
        """0.0 when the request may go on, else the seconds to wait (for `Retry-After`)."""
        wait = self.per_call.take(f"{key}/{call_id}") if call_id is not None else 0.0
        if wait:
            return wait
        return self.per_key.take(key)
