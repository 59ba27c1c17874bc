"""Global load shedding: past `max_in_flight` REST requests at once, answer 503 at once.

A request shed costs microseconds; one queued behind an overloaded gateway costs its
caller the wait and then a timeout. The liveness probe is never shed (an orchestrator
would restart a gateway that is only busy).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from svckit.errors import error_response

NEVER_SHED = frozenset({"/healthz"})
RETRY_AFTER_S = 1


class InFlightLimit:
    def __init__(self, app: ASGIApp, max_in_flight: int, in_flight: Gauge, errors: Counter) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._gauge = in_flight
        self._errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self._in_flight >= self.max_in_flight:
            self._errors.labels("overloaded").inc()
            response = error_response(
                503,
                "overloaded",
                "too many requests in progress; retry later",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        self._in_flight += 1
        self._gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight -= 1
            self._gauge.dec()
