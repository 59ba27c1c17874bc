"""What outlives one request: the open socket per call, and barge-ins on their way to dm."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol


class CallConnection(Protocol):
    def take_over(self) -> None:
        """Another connection now serves this call: close this one."""


class SocketRegistry:
    """The socket serving each call in this process; a newer one takes the call over."""

    def __init__(self) -> None:
        self._by_call: dict[str, CallConnection] = {}

    def __len__(self) -> int:
        return len(self._by_call)

    def claim(self, call_id: str, connection: CallConnection) -> None:
        previous = self._by_call.get(call_id)
        self._by_call[call_id] = connection
        if previous is not None:
            previous.take_over()

    def release(self, call_id: str, connection: CallConnection) -> None:
        if self._by_call.get(call_id) is connection:
            del self._by_call[call_id]


class DetachedTasks:
    """dm requests that must finish even if the socket that asked for them drops.

    A caller who barges in and hangs up at once must still stop the turn in dm.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout_s: float) -> None:
        """Let the tasks finish for up to `timeout_s`, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
