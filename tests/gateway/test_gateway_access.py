"""Auth (API keys), call ownership and rate limits, on the socket and on REST."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fake_dm import FakeDm
from gateway_harness import CallClient, dial, eventually, gateway_settings
from pydantic import ValidationError

from gateway.app import create_app
from gateway.auth import owner_label
from gateway.settings import GatewaySettings
from support.servers import ServerThread

KEYS = "key-one, key-two"
ONE = {"Authorization": "Bearer key-one"}
TWO = {"Authorization": "Bearer key-two"}


async def refused(call: CallClient) -> tuple[str, int | None, str | None]:
    """The error code the server sent on an accepted socket, and how it then closed it."""
    message = await call.recv()
    assert message["type"] == "error"
    code, reason = await call.closed()
    return str(message["code"]), code, reason


async def test_with_keys_the_socket_needs_one(serve_gateway: Any, open_call: Any) -> None:
    with serve_gateway(gateway_api_keys=KEYS) as url:
        for how in (
            {},
            {"headers": {"Authorization": "Bearer key-three"}},
            {"headers": {"Authorization": "Basic key-one"}},
            {"query": "?token=key-three"},
        ):
            async with open_call("guarded", base_url=url, **how) as call:
                assert await refused(call) == ("unauthorized", 1008, "unauthorized"), how
        async with open_call("guarded", base_url=url, headers=ONE) as call:
            assert (await call.start("booking_mri", "en"))["resumed"] is False
        async with open_call("guarded", base_url=url, query="?token=key-one") as call:
            assert (await call.start("booking_mri", "en"))["resumed"] is True


async def test_with_keys_rest_needs_one(serve_gateway: Any) -> None:
    with serve_gateway(gateway_api_keys=KEYS) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            refused = await client.get("/v1/flows")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            wrong = await client.get("/v1/flows", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = await client.get("/v1/flows", headers=TWO)
            assert ok.status_code == 200
            assert (await client.get("/healthz")).status_code == 200  # probes stay open


async def test_a_call_belongs_to_the_key_that_created_it(serve_gateway: Any) -> None:
    with serve_gateway(gateway_api_keys=KEYS) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {"flow": "booking_mri", "lang": "en", "call_id": "mine"}
            assert (await client.post("/v1/calls", json=body, headers=ONE)).status_code == 201
            turn = {"turn_id": "t1", "text": "Maria"}
            for method, path, json in (
                ("GET", "/v1/calls/mine", None),
                ("POST", "/v1/calls/mine/turns", turn),
                ("DELETE", "/v1/calls/mine", None),
            ):
                answer = await client.request(method, path, json=json, headers=TWO)
                assert answer.status_code == 404, (method, path)
                assert answer.json()["error"]["code"] == "call_not_found"
            streamed = await client.post(
                "/v1/calls/mine/turns",
                json=turn,
                headers={**TWO, "Accept": "text/event-stream"},
            )
            assert streamed.status_code == 404
            state = await client.get("/v1/calls/mine", headers=ONE)
            assert state.json()["ended"] is False  # the other key's DELETE ended nothing


async def test_another_keys_socket_cannot_take_the_call_over(
    serve_gateway: Any, open_call: Any
) -> None:
    with serve_gateway(gateway_api_keys=KEYS) as url:
        async with open_call("owned", base_url=url, headers=ONE) as owner:
            assert (await owner.start("booking_mri", "en"))["type"] == "call.started"
            async with open_call("owned", base_url=url, headers=TWO) as intruder:
                await intruder.send("call.start", flow="booking_mri", lang="en")
                assert await refused(intruder) == ("call_not_found", 1008, "call not found")
            # The owner's socket is still open and serving.
            await owner.send("call.start", flow="booking_mri", lang="en")
            assert (await owner.recv())["code"] == "call_already_started"


async def test_another_keys_requests_do_not_spend_the_calls_budget(
    serve_gateway: Any, open_call: Any
) -> None:
    with serve_gateway(gateway_api_keys=KEYS, gateway_call_rate=0.01, gateway_call_burst=4) as url:
        async with open_call("budget", base_url=url, headers=ONE) as owner:  # 1 token
            await owner.start("booking_mri", "en")  # 2
            async with httpx.AsyncClient(base_url=url) as client:
                for _ in range(10):
                    await client.get("/v1/calls/budget", headers=TWO)
            await owner.send("playback.done", turn_id="t0")  # 3: still within the budget
            assert (await owner.recv())["code"] == "unknown_turn"


@pytest.fixture
def fake_dm() -> Iterator[tuple[FakeDm, str]]:
    dm = FakeDm()
    with ServerThread(dm.app) as server:
        yield dm, server.url


async def test_every_call_route_names_the_owner_and_dm_gets_its_key(
    fake_dm: tuple[FakeDm, str],
) -> None:
    dm, dm_url = fake_dm
    settings = gateway_settings(dm_url, gateway_api_keys=KEYS, dm_api_key="dm-secret")
    with ServerThread(create_app(settings), ws=True) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, headers=ONE) as client:
            await client.post("/v1/calls", json={"flow": "f", "lang": "en", "call_id": "rest"})
            await client.post("/v1/calls/rest/turns", json={"turn_id": "t1", "text": "hi"})
            await client.get("/v1/calls/rest")
            await client.delete("/v1/calls/rest")
        async with dial("ws", base_url=gateway.url, headers=ONE) as call:
            await call.start("booking_mri", "en")
            await call.turn("t1", "hello")
            await call.send("user.partial", text="and one more")  # barges in on t1
            assert (await call.recv())["type"] == "turn.cancelled"
            await eventually(lambda: bool(dm.seen("POST", "/partial")))
            await call.send("call.end")
            await call.recv_until("call.ended")
    owner = owner_label("key-one")
    call_routes = [r for r in dm.requests if r.path.startswith("/v1/calls")]
    assert {(r.method, r.path.split("/")[-1]) for r in call_routes} >= {
        ("POST", "calls"),
        ("POST", "turns"),
        ("GET", "rest"),
        ("DELETE", "rest"),
        ("POST", "partial"),
        ("POST", "interrupt"),
        ("DELETE", "ws"),
    }
    assert all(r.headers.get("x-call-owner") == owner for r in call_routes)
    assert all(r.headers.get("authorization") == "Bearer dm-secret" for r in dm.requests)


async def test_without_keys_no_owner_is_sent(fake_dm: tuple[FakeDm, str]) -> None:
    dm, dm_url = fake_dm
    with ServerThread(create_app(gateway_settings(dm_url)), ws=True) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            await client.post("/v1/calls", json={"flow": "f", "lang": "en", "call_id": "anon"})
    assert dm.requests[-1].path == "/v1/calls"
    assert "x-call-owner" not in dm.requests[-1].headers
    assert "authorization" not in dm.requests[-1].headers


async def test_without_keys_auth_is_off(gateway: str, open_call: Any) -> None:
    async with open_call("open") as call:
        assert (await call.start("booking_mri", "ru"))["type"] == "call.started"
    async with httpx.AsyncClient(base_url=gateway) as client:
        assert (await client.get("/v1/flows")).status_code == 200


async def test_ops_endpoints_need_a_key_outside_the_ops_networks(serve_gateway: Any) -> None:
    with serve_gateway(gateway_api_keys=KEYS, gateway_ops_networks="") as url:
        async with httpx.AsyncClient(base_url=url) as client:
            for path in ("/readyz", "/metrics"):
                assert (await client.get(path)).status_code == 401, path
                assert (await client.get(path, headers=ONE)).status_code == 200, path
            assert (await client.get("/healthz")).status_code == 200
    with serve_gateway(gateway_api_keys=KEYS) as url:  # loopback is an ops network by default
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com"])
def test_without_keys_the_gateway_refuses_a_public_address(host: str) -> None:
    with pytest.raises(ValidationError, match="refusing to listen"):
        gateway_settings("http://dm", host=host)
    assert gateway_settings("http://dm", host=host, gateway_api_keys="k").host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_without_keys_loopback_is_fine(host: str) -> None:
    settings: GatewaySettings = gateway_settings("http://dm", host=host)
    assert settings.api_keys == frozenset()


def test_ops_networks_must_be_networks() -> None:
    with pytest.raises(ValidationError, match="is not a network"):
        gateway_settings("http://dm", gateway_ops_networks="127.0.0.1/8,nowhere")


async def test_rest_rate_limit_per_call(serve_gateway: Any) -> None:
    with serve_gateway(gateway_call_rate=0.5, gateway_call_burst=2) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            answers = [await client.get("/v1/calls/busy-call") for _ in range(3)]
            assert [a.status_code for a in answers] == [404, 404, 429]
            assert answers[-1].json()["error"]["code"] == "rate_limited"
            assert answers[-1].headers["retry-after"] == "2"
            assert (await client.get("/v1/calls/quiet-call")).status_code == 404


async def test_rest_rate_limit_per_key(serve_gateway: Any) -> None:
    with serve_gateway(gateway_key_rate=0.25, gateway_key_burst=2) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            answers = [await client.get("/v1/flows") for _ in range(3)]
            assert [a.status_code for a in answers] == [200, 200, 429]
            assert answers[-1].headers["retry-after"] == "4"


async def test_socket_rate_limit_closes_with_1008(serve_gateway: Any, open_call: Any) -> None:
    with serve_gateway(gateway_call_rate=0.01, gateway_call_burst=3) as url:
        async with open_call("chatty", base_url=url) as call:  # the upgrade costs a token
            await call.start("booking_mri", "ru")
            await call.send("user.partial", text="эм")
            await call.send("user.partial", text="ну")
            limited = await call.recv()
            assert (limited["type"], limited["code"]) == ("error", "rate_limited")
            assert await call.closed() == (1008, "rate limited")
        async with open_call("chatty", base_url=url) as call:
            assert await refused(call) == ("rate_limited", 1008, "rate_limited")


async def test_sockets_per_key_are_capped(serve_gateway: Any, open_call: Any) -> None:
    with serve_gateway(gateway_api_keys=KEYS, gateway_max_sockets_per_key=2) as url:
        async with (
            open_call("s1", base_url=url, headers=ONE),
            open_call("s2", base_url=url, headers=ONE),
        ):
            async with open_call("s3", base_url=url, headers=ONE) as third:
                assert await refused(third) == ("too_many_sockets", 1008, "too_many_sockets")
            async with open_call("s3", base_url=url, headers=TWO) as other_key:
                assert (await other_key.start("booking_mri", "en"))["type"] == "call.started"
        async with open_call("s4", base_url=url, headers=ONE) as freed:
            assert (await freed.start("booking_mri", "en"))["type"] == "call.started"


async def test_a_socket_without_call_start_is_closed(serve_gateway: Any, open_call: Any) -> None:
    with serve_gateway(gateway_ws_start_timeout_s=0.3) as url:
        async with open_call("silent", base_url=url) as call:
            message = await call.recv()
            assert (message["type"], message["code"]) == ("error", "call_not_started")
            assert await call.closed() == (1008, "no call.start in time")
        async with open_call("prompt", base_url=url) as call:
            await call.start("booking_mri", "en")
            await asyncio.sleep(0.5)
            await call.send("call.start", flow="booking_mri", lang="en")
            # Past the deadline, the started call's socket is still open.
            assert (await call.recv())["code"] == "call_already_started"


def test_dm_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="DM_URL must be an http:// or https:// URL"):
        gateway_settings("dm.internal:8081")
    assert gateway_settings("https://dm.internal:8081").dm_url == "https://dm.internal:8081"
