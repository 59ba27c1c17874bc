"""A call handed to a person (`call.transfer`), and partial ASR text forwarded to dm,
against a scripted dm double (tests/gateway/fake_dm.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fake_dm import FakeDm
from gateway_harness import dial, eventually, gateway_settings

from gateway.app import create_app
from support.servers import ServerThread


@pytest.fixture
def dm() -> FakeDm:
    return FakeDm()


@pytest.fixture
def gateway_url(dm: FakeDm) -> Iterator[str]:
    with (
        ServerThread(dm.app) as dm_server,
        ServerThread(create_app(gateway_settings(dm_server.url)), ws=True) as gateway,
    ):
        yield gateway.url


async def metric(url: str, series: str) -> float:
    async with httpx.AsyncClient(base_url=url) as client:
        for line in (await client.get("/metrics")).text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
    return 0.0


async def test_a_transfer_is_announced_before_the_call_ends(
    dm: FakeDm,
    gateway_url: str,
) -> None:
    dm.turn_end = {"done": True, "outcome": "transfer", "understood_by": "rules"}
    dm.summary_extra = {"outcome": "transfer", "transfer_reason": "caller_asked"}
    async with dial("to-a-person", base_url=gateway_url) as call:
        await call.start("booking_mri", "en")
        done = (await call.turn("t1", "can I talk to a human"))[-1]
        assert (done["type"], done["outcome"], done["understood_by"]) == (
            "turn.done",
            "transfer",
            "rules",
        )
        assert await call.recv() == {"type": "call.transfer", "reason": "caller_asked"}
        ended = await call.recv()
        assert ended["type"] == "call.ended"
        assert ended["summary"]["transfer_reason"] == "caller_asked"
        assert await call.closed() == (1000, "call ended")
    assert await metric(gateway_url, 'gateway_transfers_total{reason="caller_asked"}') == 1


async def test_a_completed_call_is_not_a_transfer(
    dm: FakeDm,
    gateway_url: str,
) -> None:
    dm.turn_end = {"done": True, "outcome": "completed"}
    dm.summary_extra = {"outcome": "completed", "transfer_reason": None}
    async with dial("booked", base_url=gateway_url) as call:
        await call.start("booking_mri", "en")
        await call.turn("t1", "yes, that is right")
        assert (await call.recv())["type"] == "call.ended"
    assert await metric(gateway_url, 'gateway_transfers_total{reason="caller_asked"}') == 0


async def test_partials_reach_dm_coalesced_the_latest_last(
    dm: FakeDm,
    gateway_url: str,
) -> None:
    dm.partial_delay_s = 0.3  # dm busy with the first: the rest must wait, not queue
    words = ["my", "name", "is", "Maria", "Ivanova", "and", "my", "number", "is"]
    utterance = " ".join(words)
    forwarded = 'gateway_partials_total{outcome="forwarded"}'

    def texts() -> list[str]:
        return [r.body["text"] for r in dm.seen("POST", "/partial")]

    async with dial("speaking", base_url=gateway_url) as call:
        await call.start("booking_mri", "en")
        for count in range(1, len(words) + 1):
            await call.send("user.partial", text=" ".join(words[:count]))
        await eventually(lambda: texts()[-1:] == [utterance])

        async def answered() -> bool:
            return await metric(gateway_url, forwarded) == len(texts())

        await eventually(answered)
    # Whatever came first goes at once; every partial after it but the last is replaced
    # by a newer one while dm is busy, never sent.
    sent = texts()
    assert len(sent) <= 2
    assert sent[-1] == utterance
    assert all(utterance.startswith(text) for text in sent)
    assert await metric(gateway_url, forwarded) == len(texts())
    coalesced = await metric(gateway_url, 'gateway_partials_total{outcome="coalesced"}')
    assert coalesced == len(words) - len(texts())


async def test_a_dm_without_the_partial_route_is_harmless(
    dm: FakeDm,
    gateway_url: str,
) -> None:
    dm.partial_route = False
    async with dial("older-dm", base_url=gateway_url) as call:
        await call.start("booking_mri", "en")
        await call.send("user.partial", text="hello")
        await eventually(lambda: len(dm.seen("POST", "/partial")) == 1)
        await call.send("user.partial", text="hello there")
        assert [m["type"] for m in await call.turn("t1", "hello there")] == [
            "reply.delta",
            "turn.done",
        ]
    assert len(dm.seen("POST", "/partial")) == 1  # after dm's 404, no more asking
    assert await metric(gateway_url, 'gateway_partials_total{outcome="refused"}') == 1
