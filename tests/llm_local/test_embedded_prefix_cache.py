"""The prefix cache's bookkeeping: longest-prefix matches, shared runs, cell counts,
redundant and least recently used cached sequences."""

from __future__ import annotations

from llm_local.embedded.prefix_cache import Match, PrefixCache

SYSTEM = list(range(100, 140))  # 40 tokens every prompt starts with


def decoded(cache: PrefixCache, seq_id: int, tokens: list[int], *, chunk: int = 16) -> None:
    """`seq_id` decodes `tokens` after its cells, `chunk` tokens per step."""
    for start in range(0, len(tokens), chunk):
        cache.extend(seq_id, tokens[start : start + chunk])


def test_an_empty_cache_matches_nothing() -> None:
    assert PrefixCache().match([1, 2, 3]) == Match(0, None)


def test_the_longest_decoded_prefix_is_found_across_runs() -> None:
    cache = PrefixCache()
    decoded(cache, 0, [*SYSTEM, 1, 2, 3])

    assert cache.match([*SYSTEM, 1, 2, 9]) == Match(42, 0)
    assert cache.match([*SYSTEM, 1, 2, 3, 4]) == Match(43, 0)
    assert cache.match(SYSTEM[:10]) == Match(10, 0)
    assert cache.match([7, *SYSTEM]) == Match(0, None)


def test_a_copied_prefix_is_shared_not_counted_twice() -> None:
    cache = PrefixCache()
    decoded(cache, 0, [*SYSTEM, 1, 2])
    cache.keep(0)

    cache.attach(1, 0, 40)
    decoded(cache, 1, [5, 6, 7])

    assert cache.cells == 42 + 3
    assert cache.length(1) == 43
    assert cache.match([*SYSTEM, 5, 6, 7, 8]) == Match(43, 1)
    assert cache.match([*SYSTEM, 1, 2]) == Match(42, 0)


def test_removing_a_sequence_frees_only_the_cells_nobody_else_holds() -> None:
    cache = PrefixCache()
    decoded(cache, 0, [*SYSTEM, 1, 2])
    cache.attach(1, 0, 40)
    decoded(cache, 1, [5, 6, 7])

    cache.remove(0)

    assert cache.cells == 43
    assert cache.match([*SYSTEM, 1, 2]) == Match(40, 1)
    cache.remove(1)
    assert cache.cells == 0
    assert cache.match(SYSTEM) == Match(0, None)


def test_a_cached_sequence_wholly_copied_by_another_is_dropped() -> None:
    cache = PrefixCache()
    decoded(cache, 0, SYSTEM)
    cache.keep(0)

    redundant = cache.attach(1, 0, 40)

    assert redundant == [0]
    assert cache.cached == 0
    assert cache.cells == 40  # the cells stay: sequence 1 holds them


def test_a_partial_copy_keeps_the_source_cached() -> None:
    cache = PrefixCache()
    decoded(cache, 0, [*SYSTEM, 1, 2])
    cache.keep(0)

    assert cache.attach(1, 0, 40) == []
    assert cache.is_cached(0)


def test_a_follower_copies_more_as_its_leader_decodes() -> None:
    cache = PrefixCache()
    prompt = [*SYSTEM, *range(1, 30)]
    decoded(cache, 0, prompt[:20])
    cache.attach(1, 0, 20)
    decoded(cache, 0, prompt[20:50])

    cache.attach(1, 0, 50)

    assert cache.length(1) == 50
    assert cache.cells == 50
    decoded(cache, 0, prompt[50:])
    decoded(cache, 1, [999])
    assert cache.cells == 69 + 1
    assert cache.match([*prompt[:50], 999]) == Match(51, 1)


def test_keep_drops_a_sequence_whose_tokens_others_already_hold() -> None:
    cache = PrefixCache()
    decoded(cache, 0, [*SYSTEM, 1, 2, 3])
    cache.keep(0)
    cache.attach(1, 0, 42)
    decoded(cache, 1, [3])  # the same token decoded again: duplicate cells

    dropped = cache.keep(1)

    assert dropped == [1]
    assert cache.cells == 43
    assert cache.is_cached(0)


def test_keep_drops_cached_sequences_the_new_one_covers() -> None:
    cache = PrefixCache()
    decoded(cache, 0, [*SYSTEM, 1])
    cache.keep(0)
    cache.attach(1, 0, 40)
    decoded(cache, 1, [1, 2, 3])  # re-decodes sequence 0's last token, then more

    dropped = cache.keep(1)

    assert dropped == [0]
    assert cache.cached == 1
    assert cache.cells == 43


def test_a_sequence_without_cells_is_not_kept() -> None:
    cache = PrefixCache()

    assert cache.keep(3) == [3]
    assert cache.cached == 0


def test_eviction_takes_the_least_recently_used_cached_sequence() -> None:
    cache = PrefixCache()
    for seq_id, last in ((0, 1), (1, 2), (2, 3)):
        decoded(cache, seq_id, [*SYSTEM[:20], seq_id + 50, last])
        cache.keep(seq_id)
    cache.attach(9, 0, 21)  # a request reuses sequence 0: now the most recent

    assert cache.evict() == 1
    assert cache.evict() == 2
    assert cache.evict() == 0
    assert cache.evict() is None
    assert cache.cells == 21  # what sequence 9 still holds


def test_idle_cells_are_those_only_cached_sequences_hold() -> None:
    cache = PrefixCache()
    decoded(cache, 0, [*SYSTEM, 1, 2])
    cache.keep(0)
    cache.attach(1, 0, 40)
    decoded(cache, 1, [5])

    assert cache.idle_cells() == 2
    cache.keep(1)
    assert cache.idle_cells() == 43


def test_clear_forgets_everything() -> None:
    cache = PrefixCache()
    decoded(cache, 0, SYSTEM)
    cache.keep(0)

    cache.clear()

    assert (cache.cells, cache.cached, cache.match(SYSTEM)) == (0, 0, Match(0, None))
