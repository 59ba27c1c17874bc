"""Sequence ids and KV cells, kept in step with llama.cpp's memory.

The prefix cache (prefix_cache.py) says which cells hold which tokens; this makes the
llama.cpp calls that keep it true, hands out sequence ids, and keeps within limits:
cached prefixes are evicted, least recently used first, when an id or room for a
request's cells is missing, and when they hold more ids or idle cells than allowed
(every cell in use costs attention time on every step).
"""

from __future__ import annotations

from llm_local.embedded import clib
from llm_local.embedded.prefix_cache import PrefixCache


class KvSpace:
    def __init__(
        self,
        mem: clib.MemoryPtr,
        *,
        n_ctx: int,
        n_seq_max: int,
        max_cached: int,
        max_idle_cells: int,
    ) -> None:
        self._mem = mem
        self.n_ctx = n_ctx
        self._n_seq_max = n_seq_max
        self._max_cached = max_cached
        self._max_idle_cells = max_idle_cells
        self.cache = PrefixCache()
        self._free = list(range(n_seq_max - 1, -1, -1))
        self.evictions = 0

    def take_id(self) -> int | None:
        """A sequence id with no cells; None when every id holds a running sequence."""
        if not self._free and not self._evict():
            return None
        return self._free.pop()

    def copy(self, seq_id: int, source: int, start: int, end: int) -> None:
        """Give `seq_id` the cells of `source` at positions start..end-1."""
        clib.memory_seq_cp(self._mem, source, seq_id, start, end)
        for redundant in self.cache.attach(seq_id, source, end):
            self._release(redundant)

    def room(self, cells: int, reserved: int) -> bool:
        """Whether `cells` more fit beside the cells in use and those `reserved` for
        running work, evicting cached prefixes nobody uses if needed."""
        while self.cache.cells + reserved + cells > self.n_ctx:
            if not self._evict():
                return False
        return True

    def keep(self, seq_id: int) -> None:
        """`seq_id` is done: its cells stay as a cached prefix unless redundant."""
        for dropped in self.cache.keep(seq_id):
            self._release(dropped)
        while self.cache.cached > self._max_cached or (
            self.cache.idle_cells() > self._max_idle_cells
        ):
            if not self._evict():
                return

    def discard(self, seq_id: int) -> None:
        """`seq_id` is done and its cells are of no use."""
        self.cache.remove(seq_id)
        self._release(seq_id)

    def clear(self) -> None:
        """Empty the KV cache and free every id."""
        clib.memory_clear(self._mem)
        self.cache.clear()
        self._free = list(range(self._n_seq_max - 1, -1, -1))

    def _evict(self) -> bool:
        evicted = self.cache.evict()
        if evicted is None:
            return False
        self.evictions += 1
        self._release(evicted)
        return True

    def _release(self, seq_id: int) -> None:
        clib.memory_seq_rm(self._mem, seq_id)
        self._free.append(seq_id)
