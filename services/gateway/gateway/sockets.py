"""What outlives one request: the open sockets, and barge-ins on their way to dm."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Protocol


class CallConnection(Protocol):
    def take_over(self) -> None:
        """Another connection now serves this call: close this one."""


class SocketRegistry:
    """The sockets open per key, and the one serving each call in this process.

    A socket counts against its key's cap from the handshake on. It serves a call only
    once dm has accepted its `call.start` for the call's owner; only then does it take
    the call over from an earlier socket, so another key's socket cannot close it.
    """

    def __init__(self, max_per_key: int) -> None:
        self.max_per_key = max_per_key
        self._by_call: dict[str, CallConnection] = {}
        self._per_key: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._by_call)

    def open(self, key: str) -> bool:
        """Count a new socket of `key`; False (and not counted) when the key is at its cap."""
        if self._per_key[key] >= self.max_per_key:
            return False
        self._per_key[key] += 1
        return True

    def close(self, key: str) -> None:
        self._per_key[key] -= 1
        if self._per_key[key] <= 0:
            del self._per_key[key]

    def claim(self, call_id: str, connection: CallConnection) -> None:
        previous = self._by_call.get(call_id)
        self._by_call[call_id] = connection
        if previous is not None and previous is not connection:
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
