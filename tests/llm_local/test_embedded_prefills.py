"""How prefill requests are answered: queued, merged with the same conversation's,
already cached, or refused under load. (Decoding them is tested on the real model in
test_embedded_prefix_reuse.py.)"""

from __future__ import annotations

from llm_local.backends.base import BackendError, PrefillResult
from llm_local.embedded import clib
from llm_local.embedded.jobs import PrefillJob
from llm_local.embedded.kv_space import KvSpace
from llm_local.embedded.prefills import Prefills

SYSTEM = list(range(100, 160))


def kv_space() -> KvSpace:
    # No call in these tests reaches llama.cpp: nothing is decoded, copied or evicted.
    return KvSpace(clib.MemoryPtr(0), n_ctx=4096, n_seq_max=8, max_cached=4, max_idle_cells=4096)


def decoded(kv: KvSpace, tokens: list[int]) -> None:
    """As if a finished request had decoded `tokens` into sequence 0."""
    kv.cache.extend(0, tokens)
    kv.cache.keep(0)


def offer(queue: Prefills, tokens: list[int], *, requests_waiting: bool = False) -> PrefillResult:
    answers: list[PrefillResult | BackendError] = []
    queue.offer(PrefillJob(tokens, answers.append), requests_waiting=requests_waiting, reserved=0)
    [result] = answers
    assert isinstance(result, PrefillResult)
    return result


def test_a_new_prompt_is_queued_whole() -> None:
    queue = Prefills(kv_space(), max_queued=2)

    assert offer(queue, [*SYSTEM, 1, 2]) == PrefillResult(62, 0, 62, queued=True)
    assert queue.outcomes["queued"] == 1


def test_a_newer_partial_of_the_same_conversation_replaces_the_queued_one() -> None:
    queue = Prefills(kv_space(), max_queued=1)
    offer(queue, [*SYSTEM, 1, 2])

    again = offer(queue, [*SYSTEM, 1, 2, 3, 4])

    assert again == PrefillResult(64, 0, 64, queued=True)
    assert queue.outcomes["coalesced"] == 1


def test_prompts_sharing_only_the_cached_part_are_not_merged() -> None:
    kv = kv_space()
    decoded(kv, SYSTEM)
    queue = Prefills(kv, max_queued=1)
    offer(queue, [*SYSTEM, 1, 2])

    other = offer(queue, [*SYSTEM, 7, 8])

    assert other == PrefillResult(62, 60, 0, queued=False)
    assert queue.outcomes["dropped"] == 1


def test_a_prompt_already_decoded_is_not_queued() -> None:
    kv = kv_space()
    decoded(kv, [*SYSTEM, 1, 2])
    queue = Prefills(kv, max_queued=2)

    assert offer(queue, [*SYSTEM, 1]) == PrefillResult(61, 61, 0, queued=False)
    assert queue.outcomes["cached"] == 1


def test_prefills_are_refused_while_requests_wait() -> None:
    queue = Prefills(kv_space(), max_queued=2)

    result = offer(queue, [*SYSTEM, 1, 2], requests_waiting=True)

    assert result == PrefillResult(62, 0, 0, queued=False)
    assert not queue.running
