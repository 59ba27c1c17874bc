"""dm's own defences: calls owned by their key's label, dm's key, bounded inputs and state."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from dm.keys import interrupts_key, order_key, state_key, turns_key
from support.stack import DmStack, dm_stack

OWNER = {"X-Call-Owner": "a" * 32}
OTHER = {"X-Call-Owner": "b" * 32}


@pytest.fixture
def stack(redis_url: str) -> Iterator[DmStack]:
    with dm_stack(redis_url, dm_turn_records=4) as running:
        yield running


@pytest.fixture
async def client(stack: DmStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.dm_url, timeout=10) as http:
        yield http


async def created(client: httpx.AsyncClient, call_id: str = "c-1") -> None:
    body = {"flow": "booking_mri", "lang": "en", "call_id": call_id}
    response = await client.post("/v1/calls", json=body, headers=OWNER)
    assert response.status_code == 201, response.text


async def test_a_call_is_found_only_by_the_key_that_made_it(client: httpx.AsyncClient) -> None:
    await created(client)
    turn = {"turn_id": "t1", "text": "maria"}
    attempts = [
        client.get("/v1/calls/c-1", headers=OTHER),
        client.post("/v1/calls/c-1/turns", json=turn, headers=OTHER),
        client.post("/v1/calls/c-1/turns/t1/interrupt", json={"heard": ""}, headers=OTHER),
        client.post("/v1/calls/c-1/partial", json={"text": "mar"}, headers=OTHER),
        client.delete("/v1/calls/c-1", headers=OTHER),
        client.get("/v1/calls/c-1"),  # no label at all
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "call_not_found"
    # The owner's call is untouched by all that, and still theirs.
    mine = await client.post("/v1/calls/c-1/turns", json=turn, headers=OWNER)
    assert mine.status_code == 200
    assert mine.json()["state_version"] == 1
    # A retried turn of another key is not replayed to it either.
    replay = await client.post("/v1/calls/c-1/turns", json=turn, headers=OTHER)
    assert replay.status_code == 404


async def test_call_ids_are_unguessable(client: httpx.AsyncClient) -> None:
    ids = set()
    for _ in range(3):
        response = await client.post("/v1/calls", json={"flow": "booking_mri", "lang": "en"})
        ids.add(response.json()["call_id"])
    assert len(ids) == 3
    assert all(re.fullmatch(r"call-[0-9a-f]{32}", call_id) for call_id in ids)


@pytest.mark.parametrize(
    "body",
    [
        {"flow": "booking_mri", "lang": "en", "call_id": "."},
        {"flow": "booking_mri", "lang": "en", "call_id": ".."},
        {"flow": "booking_mri", "lang": "en", "metadata": {"a": {"b": 1}}},
        {"flow": "booking_mri", "lang": "en", "metadata": {f"k{n}": n for n in range(40)}},
        {"flow": "booking_mri", "lang": "en", "metadata": {"k": "v" * 600}},
        {"flow": "booking_mri", "lang": "en", "region": "us"},
        {"flow": "booking_mri", "lang": "en", "region": "ZZ"},
    ],
)
async def test_bad_calls_get_a_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await client.post("/v1/calls", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in {"invalid_field", "unsupported_region"}


async def test_a_deeply_nested_metadata_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    nested: dict[str, object] = {}
    for _ in range(300):
        nested = {"a": nested}
    body = {"flow": "booking_mri", "lang": "en", "metadata": nested}
    response = await client.post("/v1/calls", json=body)
    assert response.status_code == 422


@pytest.mark.parametrize("text", ["\u200b", "\x00", " \u200b\u200d ", "\ufeff"])
async def test_text_with_nothing_visible_is_a_422(client: httpx.AsyncClient, text: str) -> None:
    await created(client)
    response = await client.post(
        "/v1/calls/c-1/turns", json={"turn_id": "t1", "text": text}, headers=OWNER
    )
    assert response.status_code == 422


async def test_compatibility_characters_are_read_as_plain_ones(client: httpx.AsyncClient) -> None:
    await created(client)
    await client.post("/v1/calls/c-1/turns", json={"turn_id": "t1", "text": "maria"}, headers=OWNER)
    response = await client.post(
        "/v1/calls/c-1/turns",
        json={"turn_id": "t2", "text": "④①⑤ ⑤⑤⑤ ⓪①③④"},
        headers=OWNER,
    )
    assert response.status_code == 200
    assert response.json()["slots"]["phone"] == "+14155550134"


async def test_turn_records_are_capped_and_delete_purges_the_transcript(
    stack: DmStack, client: httpx.AsyncClient
) -> None:
    await created(client)
    lines = ["maria", "415 555 0134", "knee", "tomorrow", "at 3 pm"]
    for number, text in enumerate(lines, 1):
        turn = {"turn_id": f"t{number}", "text": text}
        response = await client.post("/v1/calls/c-1/turns", json=turn, headers=OWNER)
        assert response.status_code == 200
    store = redis.Redis.from_url(stack.settings.redis_url)
    try:
        # Five turns, four kept (dm_turn_records=4): the oldest record went.
        assert store.lrange(order_key("c-1"), 0, -1) == [b"t2", b"t3", b"t4", b"t5"]
        assert store.hlen(turns_key("c-1")) == 8
        summary = (await client.delete("/v1/calls/c-1", headers=OWNER)).json()
        assert summary["ended"] is True
        assert summary["history"] == []
        assert not store.exists(turns_key("c-1"), order_key("c-1"), interrupts_key("c-1"))
        assert 0 < store.ttl(state_key("c-1")) <= stack.settings.dm_ended_retention_s
        assert (await client.delete("/v1/calls/c-1", headers=OWNER)).json() == summary
    finally:
        store.close()


async def test_dm_requires_its_key_when_one_is_set(redis_url: str) -> None:
    with dm_stack(redis_url, dm_api_key="dm-secret") as stack:
        async with httpx.AsyncClient(base_url=stack.dm_url, timeout=10) as client:
            body = {"flow": "booking_mri", "lang": "en"}
            refused = await client.post("/v1/calls", json=body)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            wrong = await client.post(
                "/v1/calls", json=body, headers={"Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401
            allowed = await client.post(
                "/v1/calls", json=body, headers={"Authorization": "Bearer dm-secret"}
            )
            assert allowed.status_code == 201
            assert (await client.get("/healthz")).status_code == 200  # probes stay open


async def test_metrics_carry_redis_memory(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    used = next(line for line in text.splitlines() if line.startswith("dm_redis_used_memory_bytes"))
    assert float(used.split()[1]) > 0
    assert "dm_redis_maxmemory_bytes" in text
