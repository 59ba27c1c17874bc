"""The prefix-cache bookkeeping: hits, LRU eviction of unused prefixes, capacity."""

from __future__ import annotations

from llm_local.embedded.prefix_cache import PrefixCache

A, B, C = (1, 2, 3), (4, 5), (6,)


def test_a_second_request_with_the_same_prefix_shares_the_slot() -> None:
    cache = PrefixCache([10, 11])

    first, evicted = cache.acquire(A)
    again, _ = cache.acquire(A)

    assert first is again
    assert first is not None
    assert evicted is None
    assert first.users == 2
    assert cache.cells() == 3


def test_the_least_recently_used_unused_prefix_is_evicted() -> None:
    cache = PrefixCache([10, 11])
    a, _ = cache.acquire(A)
    b, _ = cache.acquire(B)
    assert a is not None
    assert b is not None
    cache.release(a)
    cache.release(b)
    cache.acquire(A)  # A is now the most recent
    cache.release(a)

    c, evicted = cache.acquire(C)

    assert c is not None
    assert evicted == b.seq_id
    assert c.seq_id == b.seq_id
    assert {s.tokens for s in cache.slots()} == {A, C}


def test_no_slot_when_every_prefix_is_in_use() -> None:
    cache = PrefixCache([10])
    cache.acquire(A)

    assert cache.acquire(B) == (None, None)


def test_a_slot_is_ready_once_every_token_is_decoded() -> None:
    cache = PrefixCache([10])
    slot, _ = cache.acquire(A)
    assert slot is not None

    slot.filled = 2
    assert not slot.ready
    slot.filled = 3
    assert slot.ready
