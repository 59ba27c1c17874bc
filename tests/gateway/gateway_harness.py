"""Test harness for the gateway: settings, a WebSocket call client, waiting helpers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.settings import GatewaySettings
from support.stack import DmStack
from voicectl.scripted_llm import ScriptedReply

RECV_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0


def gateway_settings(dm_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {"dm_url": dm_url, **overrides}
    return GatewaySettings(_env_file=None, **values)  # type: ignore[call-arg]


def gateway_env(**values: str) -> dict[str, str]:
    """The environment for `python -m gateway`: this shell's, minus its service settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "DM_"))}
    return {**env, "LOG_LEVEL": "warning", **values}


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the gateway process at `url` answers /readyz with 200."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None, "the gateway exited at start-up"
        assert time.monotonic() < deadline, "the gateway did not become ready"
        time.sleep(0.05)


def ws_url(base_url: str, call_id: str, query: str = "") -> str:
    return base_url.replace("http://", "ws://") + f"/v1/calls/{call_id}/ws" + query


class CallClient:
    """A pipeline's side of one call socket, speaking JSON messages."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(orjson.dumps({"type": kind, **fields}).decode())

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(RECV_TIMEOUT_S):
            frame = await self.ws.recv()
        message: dict[str, Any] = orjson.loads(frame)
        return message

    async def recv_until(self, *kinds: str) -> list[dict[str, Any]]:
        """Messages up to and including the first of one of `kinds`."""
        messages = [await self.recv()]
        while messages[-1]["type"] not in kinds:
            messages.append(await self.recv())
        return messages

    async def start(self, flow: str, lang: str) -> dict[str, Any]:
        await self.send("call.start", flow=flow, lang=lang)
        return await self.recv()

    async def turn(self, turn_id: str, text: str) -> list[dict[str, Any]]:
        """One whole turn: the messages from its backchannel to its turn.done or error."""
        await self.send("user.final", turn_id=turn_id, text=text)
        return await self.recv_until("turn.done", "turn.cancelled", "error")

    async def closed(self) -> tuple[int | None, str | None]:
        """Wait for the server to close the socket: its close code and reason."""
        async with asyncio.timeout(RECV_TIMEOUT_S):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed as exc:
                if exc.rcvd is None:
                    return None, None
                return exc.rcvd.code, exc.rcvd.reason


@asynccontextmanager
async def dial(
    call_id: str, *, base_url: str, query: str = "", headers: Any = None
) -> AsyncIterator[CallClient]:
    """A CallClient on the call socket of the gateway at `base_url`."""
    async with connect(
        ws_url(base_url, call_id, query),
        additional_headers=headers,
        compression=None,
        max_size=None,
        open_timeout=RECV_TIMEOUT_S,
    ) as ws:
        yield CallClient(ws)


def llm_says(stack: DmStack, **fields: Any) -> None:
    """Queue the scripted LLM's next answer: this JSON object."""
    stack.llm.push(ScriptedReply(content=json.dumps(fields, ensure_ascii=False)))


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = RECV_TIMEOUT_S
) -> None:
    """Wait for a condition another process or thread makes true and signals no other way."""
    deadline = time.monotonic() + timeout_s
    while not await _holds(condition):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


def assert_turn_shape(messages: list[dict[str, Any]], turn_id: str) -> dict[str, Any]:
    """backchannel, then reply.delta pieces, then turn.done whose reply they add up to."""
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "backchannel"
    assert kinds[-1] == "turn.done"
    assert set(kinds[1:-1]) == {"reply.delta"}
    assert all(m["turn_id"] == turn_id for m in messages)
    done = messages[-1]
    assert "".join(m["text"] for m in messages[1:-1]) == done["reply"]
    assert done["backchannel"] == messages[0]["text"]
    return done


async def _holds(condition: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = condition()
    return await result if isinstance(result, Awaitable) else result
