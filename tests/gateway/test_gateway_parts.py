"""The small parts on their own: token buckets, key checks, the SSE reader."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.auth import ANONYMOUS, Authenticator, bearer_token
from gateway.dm_client import sse_data
from gateway.limits import SWEEP_EVERY, RateLimits, TokenBuckets


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=3.0, clock=clock)
    assert [buckets.take("k") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    clock.now = 0.5
    assert buckets.take("k") == 0.0
    assert buckets.take("k") == 0.5
    assert buckets.take("other") == 0.0  # buckets are per key


def test_idle_buckets_are_swept() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=1.0, burst=2.0, clock=clock)
    for index in range(SWEEP_EVERY - 1):
        buckets.take(f"call-{index}")
    clock.now = 2.0  # every bucket is full again: the same as a new one
    buckets.take("fresh")
    assert len(buckets) == 1


def test_rate_limits_check_the_call_then_the_key() -> None:
    clock = FakeClock()
    limits = RateLimits(TokenBuckets(1.0, 2.0, clock), TokenBuckets(1.0, 1.0, clock))
    assert limits.admit("key", "call-a") == 0.0
    assert limits.admit("key", "call-a") == 1.0  # the call's bucket is empty
    assert limits.admit("key", "call-b") == 0.0
    assert limits.admit("key", None) == 1.0  # the key's bucket is empty now


def test_without_keys_everyone_is_anonymous() -> None:
    assert Authenticator(frozenset()).identify(None) == ANONYMOUS


def test_keys_are_checked_and_never_echoed() -> None:
    auth = Authenticator(frozenset({"secret-1", "secret-2"}))
    label = auth.identify("Bearer secret-1")
    assert label is not None
    assert "secret" not in label
    assert auth.identify("bearer secret-2") not in (None, label)
    assert auth.identify(None, token="secret-1") == label
    assert auth.identify(None) is None
    assert auth.identify("Bearer wrong") is None
    assert auth.identify("Basic secret-1") is None
    # A header, when present, is the credential: a good query token does not rescue it.
    assert auth.identify("Bearer wrong", token="secret-1") is None


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Bearer", None), ("Token abc", None)],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_sse_data_reassembles_events_across_chunks() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'event: backchannel\ndata: {"type":"back'
        yield b'channel"}\n\nevent: reply.delta\ndata: {"text":"\xd0'  # half a character
        yield b'\xb0"}\n\n'
        yield b"event: turn.done\ndata: {}\n\n"

    assert [data async for data in sse_data(chunks())] == [
        '{"type":"backchannel"}',
        '{"text":"а"}',
        "{}",
    ]
