"""Driving an llm-local backend in tests: read its event stream, wait for its state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from llm_local.backends.base import Backend, Finished, GenerationRequest, TextDelta


async def collect(backend: Backend, request: GenerationRequest) -> tuple[list[str], Finished]:
    """The text deltas of one generation and its Finished event, which must come last."""
    deltas: list[str] = []
    finished: Finished | None = None
    async for event in backend.stream(request):
        assert finished is None, "nothing may follow Finished"
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            finished = event
    assert finished is not None
    return deltas, finished


async def wait_for(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll `condition` until it holds; fail after `within_s`."""
    end = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.02)
