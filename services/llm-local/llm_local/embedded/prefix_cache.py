"""Cached prompt prefixes: a few reserved sequences holding a decoded system prompt.

A prefix is decoded once into its own sequence id; every request that starts with
it gets those KV cells by `llama_memory_seq_cp` (with a unified KV cache this only
tags the cells with the request's sequence id) and prefills only the rest. This
class is the bookkeeping; the engine does the decoding and the copying.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

# Shorter prefixes are not worth a sequence of their own.
MIN_PREFIX_TOKENS = 16


@dataclass(eq=False, slots=True)
class PrefixSlot:
    seq_id: int
    tokens: tuple[int, ...]
    filled: int = 0  # tokens decoded so far
    users: int = 0  # requests relying on its cells (waiting for it or decoding)

    @property
    def ready(self) -> bool:
        return self.filled == len(self.tokens)


class PrefixCache:
    """An LRU of prefixes over a fixed set of sequence ids."""

    def __init__(self, seq_ids: Sequence[int]) -> None:
        self._free = list(seq_ids)
        self._slots: OrderedDict[tuple[int, ...], PrefixSlot] = OrderedDict()

    def slots(self) -> list[PrefixSlot]:
        return list(self._slots.values())

    def cells(self) -> int:
        """KV cells the cached prefixes occupy."""
        return sum(len(slot.tokens) for slot in self._slots.values())

    def acquire(self, tokens: tuple[int, ...]) -> tuple[PrefixSlot | None, int | None]:
        """The slot for `tokens` (new ones start unfilled) and a sequence id to clear.

        The id is that of an evicted prefix, whose cells the caller must remove. No
        slot when every slot is in use by other prefixes.
        """
        slot = self._slots.get(tokens)
        if slot is not None:
            self._slots.move_to_end(tokens)
            slot.users += 1
            return slot, None
        evicted = self.evict_one() if not self._free else None
        if not self._free:
            return None, None
        slot = PrefixSlot(seq_id=self._free.pop(), tokens=tokens, users=1)
        self._slots[tokens] = slot
        return slot, evicted

    def release(self, slot: PrefixSlot) -> None:
        slot.users -= 1

    def evict_one(self) -> int | None:
        """Forget the least recently used prefix nobody relies on; its sequence id."""
        for key, slot in self._slots.items():
            if slot.users == 0:
                del self._slots[key]
                self._free.append(slot.seq_id)
                return slot.seq_id
        return None

    def clear(self) -> None:
        for slot in self._slots.values():
            self._free.append(slot.seq_id)
        self._slots.clear()
