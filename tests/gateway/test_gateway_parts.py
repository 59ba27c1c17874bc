"""The small parts on their own: token buckets, key checks, the SSE reader, partials."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from gateway.auth import ANONYMOUS, Authenticator, Caller, bearer_token, owner_label
from gateway.dm_client import sse_data
from gateway.limits import SWEEP_EVERY, RateLimits, TokenBuckets
from gateway.partials import LatestOnly
from gateway.sockets import SocketRegistry


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


def test_a_calls_bucket_is_per_key() -> None:
    clock = FakeClock()
    limits = RateLimits(TokenBuckets(1.0, 100.0, clock), TokenBuckets(1.0, 2.0, clock))
    assert [limits.admit("intruder", "victim-call") for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limits.admit("owner", "victim-call") == 0.0  # the owner's bucket is untouched


def test_without_keys_everyone_is_anonymous() -> None:
    caller = Authenticator(frozenset()).identify(None)
    assert caller == Caller(None)
    assert caller.label == ANONYMOUS


def test_keys_are_checked_and_never_echoed() -> None:
    auth = Authenticator(frozenset({"secret-1", "secret-2"}))
    caller = auth.identify("Bearer secret-1")
    assert caller is not None
    assert caller.owner == hashlib.sha256(b"secret-1").hexdigest()[:32] == owner_label("secret-1")
    assert "secret" not in caller.label
    other = auth.identify("bearer secret-2")
    assert other is not None
    assert other.owner not in (None, caller.owner)
    assert auth.identify(None, token="secret-1") == caller
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


class Gate:
    """A send that records values and returns only when let through."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.open = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def send(self, value: str) -> None:
        self.sent.append(value)
        await self.open.wait()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coro))


async def test_partials_are_coalesced_the_latest_wins() -> None:
    gate = Gate()
    partials = LatestOnly(0.0, gate.send, gate.spawn)
    assert partials.offer("меня") is False
    await asyncio.sleep(0)  # "меня" is being sent
    assert partials.offer("меня зовут") is False
    assert partials.offer("меня зовут Мария") is True  # replaced, never sent
    gate.open.set()
    await asyncio.gather(*gate.tasks)
    assert gate.sent == ["меня", "меня зовут Мария"]
    assert len(gate.tasks) == 1  # one sender at a time, never a queue of them


async def test_a_final_utterance_drops_the_pending_partial() -> None:
    gate = Gate()
    partials = LatestOnly(0.0, gate.send, gate.spawn)
    partials.offer("one")
    await asyncio.sleep(0)
    partials.offer("one two")
    partials.drop()
    gate.open.set()
    await asyncio.gather(*gate.tasks)
    assert gate.sent == ["one"]


async def test_partials_wait_out_the_interval() -> None:
    gate = Gate()
    gate.open.set()
    partials = LatestOnly(30.0, gate.send, gate.spawn)
    partials.offer("a")
    await asyncio.sleep(0)  # "a" goes at once
    partials.offer("a b")
    await asyncio.sleep(0.05)
    assert gate.sent == ["a"]  # "a b" waits for the interval, however long
    gate.tasks[0].cancel()


def test_sockets_are_capped_per_key() -> None:
    registry = SocketRegistry(max_per_key=2)
    assert [registry.open("k1") for _ in range(3)] == [True, True, False]
    assert registry.open("k2") is True
    registry.close("k1")
    assert registry.open("k1") is True


class Connection:
    def __init__(self) -> None:
        self.taken_over = False

    def take_over(self) -> None:
        self.taken_over = True


def test_only_a_claim_takes_a_call_over() -> None:
    registry = SocketRegistry(max_per_key=10)
    first, second = Connection(), Connection()
    registry.claim("c1", first)
    registry.claim("c1", first)  # the same socket again changes nothing
    assert not first.taken_over
    registry.claim("c1", second)
    assert first.taken_over
    registry.release("c1", first)  # too late: the call is the second's
    assert len(registry) == 1
    registry.release("c1", second)
    assert len(registry) == 0
