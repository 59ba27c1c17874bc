"""Interim ASR text on its way to dm: the latest only, at most once per interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class LatestOnly:
    """Sends the latest value offered, at most once per `interval_s`.

    The first value goes at once; values offered while one is being sent or within the
    interval after it replace each other (coalesced, never queued), and the newest goes
    when the interval is up. Every partial is the caller's whole utterance so far, so an
    older one is worth nothing once a newer one exists.
    """

    def __init__(
        self,
        interval_s: float,
        send: Callable[[str], Awaitable[None]],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self.interval_s = interval_s
        self._send = send
        self._spawn = spawn
        self._latest: str | None = None
        self._running = False

    def offer(self, value: str) -> bool:
        """Queue `value` to be sent; True when it replaced one that was never sent."""
        replaced = self._latest is not None
        self._latest = value
        if not self._running:
            self._running = True
            self._spawn(self._run())
        return replaced

    def drop(self) -> None:
        """Forget a value not sent yet (the utterance it belongs to is final now)."""
        self._latest = None

    async def _run(self) -> None:
        try:
            while self._latest is not None:
                value, self._latest = self._latest, None
                started = time.monotonic()
                await self._send(value)
                await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
        finally:
            self._running = False
