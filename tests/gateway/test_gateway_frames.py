"""Bad frames get an `error` and the socket stays open; oversize frames and bugs close it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gateway_harness import gateway_settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.app import create_app
from support.servers import ServerThread
from support.stack import DmStack
from voicectl.scripted_llm import ScriptedReply

NAME_GIVEN = {"slots": {"name": "Мария", "phone": None, "exam": None}, "next_node": "ask_phone"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param("not json", "malformed", id="not-json"),
        pytest.param("[1, 2]", "malformed", id="not-an-object"),
        pytest.param('{"type": "hello"}', "unknown_type", id="unknown-type"),
        pytest.param('{"text": "no type"}', "unknown_type", id="no-type"),
        pytest.param('{"type": "user.final", "turn_id": "t1"}', "invalid_field", id="no-text"),
        pytest.param(
            '{"type": "user.final", "turn_id": "bad id", "text": "hi"}',
            "invalid_field",
            id="bad-turn-id",
        ),
        pytest.param(
            '{"type": "user.final", "turn_id": "t1", "text": "hi", "extra": 1}',
            "invalid_field",
            id="unknown-field",
        ),
        pytest.param('{"type": "call.start", "lang": "ru"}', "invalid_field", id="no-flow"),
        pytest.param(
            '{"type": "user.final", "turn_id": "t1", "text": "hi"}',
            "call_not_started",
            id="before-call-start",
        ),
        pytest.param(b"\x00\x01", "unsupported_frame", id="binary"),
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(
    open_call: Any, frame: str | bytes, code: str
) -> None:
    async with open_call("bad-frame") as call:
        await call.ws.send(frame)
        answer = await call.recv()
        assert (answer["type"], answer["code"]) == ("error", code)
        assert set(answer) == {"type", "code", "message"}
        assert (await call.start("booking_mri", "ru"))["type"] == "call.started"


async def test_messages_out_of_turn_get_errors(stack: DmStack, open_call: Any) -> None:
    async with open_call("out-of-turn") as call:
        await call.start("booking_mri", "ru")
        await call.send("call.start", flow="booking_mri", lang="ru")
        assert (await call.recv())["code"] == "call_already_started"
        await call.send("interrupt", turn_id="t0")
        assert (await call.recv())["code"] == "unknown_turn"

        stack.llm.push(ScriptedReply(content=json.dumps(NAME_GIVEN), first_chunk_delay_s=0.3))
        await call.send("user.final", turn_id="t1", text="Мария")
        assert (await call.recv())["type"] == "backchannel"  # t1 is in flight
        await call.send("user.final", turn_id="t2", text="Мария")
        await call.send("playback.done", turn_id="t2")
        codes: list[str] = []
        done = None
        while len(codes) < 2 or done is None:
            message = await call.recv()
            if message["type"] == "error":
                codes.append(message["code"])
            elif message["type"] == "turn.done":
                done = message
        assert codes == ["turn_in_progress", "unknown_turn"]
        assert done["turn_id"] == "t1"


@pytest.mark.parametrize(
    "text",
    [pytest.param("a" * 64 * 1024, id="ascii"), pytest.param("я" * 33_000, id="utf8-bytes")],
)
async def test_a_frame_over_64_kib_closes_with_1009(open_call: Any, text: str) -> None:
    async with open_call("too-big") as call:
        await call.start("booking_mri", "ru")
        await call.send("user.partial", text=text)
        assert await call.closed() == (1009, "frame over 64 KiB")


def broken_dm() -> Starlette:
    """A dm that opens calls but streams a turn event that is not JSON."""

    async def create(_request: Request) -> Response:
        call = {"call_id": "c", "flow": "booking_mri", "lang": "ru", "node": "ask_name"}
        return JSONResponse({**call, "reply": "Hello", "state_version": 0}, status_code=201)

    async def turn(_request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield b"event: backchannel\ndata: {not json\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/calls", create, methods=["POST"]),
            Route("/v1/calls/{call_id}/turns", turn, methods=["POST"]),
        ]
    )


async def test_an_internal_error_closes_with_1011(open_call: Any) -> None:
    with (
        ServerThread(broken_dm()) as dm,
        ServerThread(create_app(gateway_settings(dm.url)), ws=True) as gateway,
    ):
        async with open_call("broken", base_url=gateway.url) as call:
            assert (await call.start("booking_mri", "ru"))["type"] == "call.started"
            await call.send("user.final", turn_id="t1", text="Мария")
            assert await call.closed() == (1011, "internal error")
