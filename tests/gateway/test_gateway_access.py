"""Auth (API keys) and rate limits, on the socket and on REST."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from gateway_harness import gateway_settings
from pydantic import ValidationError
from websockets.exceptions import InvalidStatus

from gateway.settings import GatewaySettings

KEYS = "key-one, key-two"


async def refused_status(
    open_call: Any, url: str, call_id: str = "guarded", **how: Any
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error body that refused the upgrade."""
    with pytest.raises(InvalidStatus) as refused:
        async with open_call(call_id, base_url=url, **how):
            pass
    response = refused.value.response
    return response.status_code, orjson.loads(response.body)["error"]


async def test_with_keys_the_socket_needs_one(serve_gateway: Any, open_call: Any) -> None:
    with serve_gateway(gateway_api_keys=KEYS) as url:
        for how in (
            {},
            {"headers": {"Authorization": "Bearer key-three"}},
            {"headers": {"Authorization": "Basic key-one"}},
            {"query": "?token=key-three"},
        ):
            status, error = await refused_status(open_call, url, **how)
            assert (status, error["code"]) == (401, "unauthorized"), how
        async with open_call(
            "guarded", base_url=url, headers={"Authorization": "Bearer key-one"}
        ) as call:
            assert (await call.start("booking_mri", "en"))["resumed"] is False
        async with open_call("guarded", base_url=url, query="?token=key-two") as call:
            assert (await call.start("booking_mri", "en"))["resumed"] is True


async def test_with_keys_rest_needs_one(serve_gateway: Any) -> None:
    with serve_gateway(gateway_api_keys=KEYS) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            refused = await client.get("/v1/flows")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            wrong = await client.get("/v1/flows", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = await client.get("/v1/flows", headers={"Authorization": "Bearer key-two"})
            assert ok.status_code == 200
            assert (await client.get("/healthz")).status_code == 200  # probes stay open


async def test_without_keys_auth_is_off(gateway: str, open_call: Any) -> None:
    async with open_call("open") as call:
        assert (await call.start("booking_mri", "ru"))["type"] == "call.started"
    async with httpx.AsyncClient(base_url=gateway) as client:
        assert (await client.get("/v1/flows")).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com"])
def test_without_keys_the_gateway_refuses_a_public_address(host: str) -> None:
    with pytest.raises(ValidationError, match="refusing to listen"):
        gateway_settings("http://dm", host=host)
    assert gateway_settings("http://dm", host=host, gateway_api_keys="k").host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_without_keys_loopback_is_fine(host: str) -> None:
    settings: GatewaySettings = gateway_settings("http://dm", host=host)
    assert settings.api_keys == frozenset()


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
        status, error = await refused_status(open_call, url, "chatty")
        assert (status, error["code"]) == (429, "rate_limited")


def test_dm_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="DM_URL must be an http:// or https:// URL"):
        gateway_settings("dm.internal:8081")
    assert gateway_settings("https://dm.internal:8081").dm_url == "https://dm.internal:8081"
