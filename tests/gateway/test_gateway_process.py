"""`python -m gateway` as a process: how it serves sockets, and what it refuses."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest
from gateway_harness import START_TIMEOUT_S, gateway_env, wait_ready
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from support.stack import DmStack
from voicectl.redis_server import free_port


@pytest.fixture
def gateway_process(stack: DmStack) -> Iterator[str]:
    port = free_port()
    env = gateway_env(DM_URL=stack.dm_url, GATEWAY_PORT=str(port))
    process = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, cwd="/tmp")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_server_limits_frames_pings_and_does_not_compress(gateway_process: str) -> None:
    url = gateway_process.replace("http://", "ws://") + "/v1/calls/proc-1/ws"
    async with connect(url, compression="deflate", max_size=None) as ws:
        assert "sec-websocket-extensions" not in ws.response.headers  # deflate declined
        async with asyncio.timeout(5):
            await (await ws.ping())  # keepalive: the server answers pings
        await ws.send('{"type": "user.partial", "text": "' + "a" * 64 * 1024 + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


def test_without_keys_it_refuses_a_public_address() -> None:
    env = gateway_env(HOST="0.0.0.0", GATEWAY_PORT=str(free_port()))
    finished = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env=env,
        cwd="/tmp",
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert finished.returncode != 0
    assert "refusing to listen on '0.0.0.0'" in finished.stderr
