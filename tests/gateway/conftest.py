"""Gateway tests: a real gateway in front of dm, Redis and a scripted LLM, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from gateway_harness import dial, gateway_settings

from gateway.app import create_app
from support.servers import ServerThread
from support.stack import DmStack, dm_stack


@pytest.fixture
def stack(redis_url: str) -> Iterator[DmStack]:
    # Every turn asks the (scripted) LLM: the gateway tests script dm's answers through it.
    with dm_stack(redis_url, dm_rules="off") as running:
        yield running


GatewayFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def serve_gateway(stack: DmStack) -> GatewayFactory:
    """`with serve_gateway(**settings) as url:` runs a gateway in front of the stack's dm."""

    @contextmanager
    def serve(**overrides: Any) -> Iterator[str]:
        app = create_app(gateway_settings(stack.dm_url, **overrides))
        with ServerThread(app, ws=True) as server:
            yield server.url

    return serve


@pytest.fixture
def gateway(serve_gateway: GatewayFactory) -> Iterator[str]:
    """The base URL of a gateway with auth off and default limits."""
    with serve_gateway() as url:
        yield url


@pytest.fixture
def open_call(gateway: str) -> Callable[..., Any]:
    """`async with open_call(call_id) as call:` a CallClient on the gateway."""

    def opened(call_id: str, *, base_url: str = gateway, **how: Any) -> Any:
        return dial(call_id, base_url=base_url, **how)

    return opened
