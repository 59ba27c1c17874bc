"""The REST turn API at the gateway: dm's answers, errors and streams passed through."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from gateway_harness import gateway_settings, llm_says
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.app import create_app
from support.servers import ServerThread
from support.stack import DmStack
from voicectl.redis_server import free_port
from voicectl.scripted_llm import ScriptedReply

NAME_GIVEN = {"slots": {"name": "Мария", "phone": None, "exam": None}, "next_node": "ask_phone"}
SSE = {"Accept": "text/event-stream"}
UNSUPPORTED = "unsupported_language"
NO_CALL = "call_not_found"


@pytest.fixture
async def client(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway) as http:
        yield http


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return response.status_code, body["error"]["code"]


async def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events = []
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


async def test_flows_are_forwarded(client: httpx.AsyncClient) -> None:
    flows = (await client.get("/v1/flows")).json()["flows"]
    assert {flow["id"] for flow in flows} == {"booking_mri", "interview_python_dev"}
    graph = (await client.get("/v1/flows/booking_mri")).json()
    assert graph["start_node"] == "ask_name"
    assert error_of(await client.get("/v1/flows/no_such_flow")) == (404, "flow_not_found")


async def test_a_call_over_rest(stack: DmStack, client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/calls", json={"flow": "booking_mri", "lang": "ru", "call_id": "r1"}
    )
    assert created.status_code == 201
    assert created.json()["node"] == "ask_name"
    again = await client.post(
        "/v1/calls", json={"flow": "booking_mri", "lang": "ru", "call_id": "r1"}
    )
    assert error_of(again) == (409, "call_exists")

    llm_says(stack, **NAME_GIVEN)
    turn = await client.post("/v1/calls/r1/turns", json={"turn_id": "t1", "text": "Мария"})
    assert turn.status_code == 200
    result = turn.json()
    assert (result["next_node"], result["slots"]["name"]) == ("ask_phone", "Мария")
    replay = await client.post("/v1/calls/r1/turns", json={"turn_id": "t1", "text": "Мария"})
    assert {**replay.json(), "timings": None} == {**result, "timings": None}
    reused = await client.post("/v1/calls/r1/turns", json={"turn_id": "t1", "text": "Ольга"})
    assert error_of(reused) == (422, "turn_id_reused")

    llm_says(
        stack, slots={"phone": "89161234567", "name": None, "exam": None}, next_node="ask_exam"
    )
    async with client.stream(
        "POST", "/v1/calls/r1/turns", json={"turn_id": "t2", "text": "89161234567"}, headers=SSE
    ) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = await sse_events(streamed)
    names = [name for name, _ in events]
    assert (names[0], names[-1]) == ("backchannel", "turn.done")
    assert set(names[1:-1]) == {"reply.delta"}
    assert all(data["type"] == name for name, data in events)
    done = events[-1][1]
    assert "".join(data["text"] for _, data in events[1:-1]) == done["reply"]

    state = (await client.get("/v1/calls/r1")).json()
    assert (state["node"], state["turns"]) == ("ask_exam", 2)
    summary = (await client.delete("/v1/calls/r1")).json()
    assert summary["ended"] is True
    assert (await client.delete("/v1/calls/r1")).json() == summary
    late = await client.post("/v1/calls/r1/turns", json={"turn_id": "t3", "text": "МРТ"})
    assert error_of(late) == (410, "call_ended")


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/v1/calls/nobody", None, (404, "call_not_found")),
        ("DELETE", "/v1/calls/nobody", None, (404, "call_not_found")),
        ("GET", "/v1/calls/bad%20id", None, (422, "invalid_field")),
        ("POST", "/v1/calls", b'{"flow": "nope", "lang": "ru"}', (422, "unknown_flow")),
        (
            "POST",
            "/v1/calls",
            b'{"flow": "booking_mri", "lang": "xx"}',
            (422, "unsupported_language"),
        ),
        ("POST", "/v1/calls", b"{not json", (400, "malformed")),
        (
            "POST",
            "/v1/calls/nobody/turns",
            b'{"turn_id": "t1", "text": "hi"}',
            (404, "call_not_found"),
        ),
        ("POST", "/v1/calls/nobody/turns", b'{"turn_id": "t1"}', (422, "invalid_field")),
        ("POST", "/v1/calls", b"x" * (64 * 1024 + 1), (413, "too_large")),
    ],
)
async def test_errors_keep_their_status_and_shape(
    client: httpx.AsyncClient, method: str, path: str, body: bytes | None, expected: tuple[int, str]
) -> None:
    headers = {"content-type": "application/json"} if body is not None else None
    response = await client.request(method, path, content=body, headers=headers)
    assert error_of(response) == expected


async def test_a_turn_in_progress_is_a_conflict(stack: DmStack, client: httpx.AsyncClient) -> None:
    await client.post("/v1/calls", json={"flow": "booking_mri", "lang": "ru", "call_id": "busy"})
    stack.llm.push(ScriptedReply(content=json.dumps(NAME_GIVEN), first_chunk_delay_s=1.0))
    first = {"turn_id": "t1", "text": "Мария"}
    async with client.stream("POST", "/v1/calls/busy/turns", json=first, headers=SSE) as streamed:
        lines = streamed.aiter_lines()
        assert await anext(lines) == "event: backchannel"  # t1 is running in dm
        second = await client.post("/v1/calls/busy/turns", json={"turn_id": "t2", "text": "Ольга"})
        assert error_of(second) == (409, "turn_in_progress")
        assert second.headers["retry-after"] == "1"
        refused_stream = await client.post(
            "/v1/calls/busy/turns", json={"turn_id": "t2", "text": "Ольга"}, headers=SSE
        )
        assert error_of(refused_stream) == (409, "turn_in_progress")


async def test_probes_and_metrics(
    stack: DmStack, gateway: str, client: httpx.AsyncClient, open_call: Any
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"dm": "ok"}
    async with open_call("metered") as call:
        await call.start("booking_mri", "ru")
        llm_says(stack, **NAME_GIVEN)
        await call.turn("t1", "Мария")
        await call.send("interrupt", turn_id="t1")
        await call.recv()
        await call.ws.send("hello")
        await call.recv()
        metrics = (await client.get("/metrics")).text
    for line in (
        "gateway_active_sockets 1.0",
        "gateway_backchannel_seconds_count 1.0",
        "gateway_first_delta_seconds_count 1.0",
        'gateway_turns_total{outcome="done"} 1.0',
        'gateway_barge_ins_total{trigger="interrupt"} 1.0',
        'gateway_errors_total{code="malformed"} 1.0',
    ):
        assert line in metrics


async def test_without_dm_the_gateway_is_not_ready(open_call: Any) -> None:
    dead_dm = f"http://127.0.0.1:{free_port()}"
    with ServerThread(create_app(gateway_settings(dead_dm)), ws=True) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/healthz")).status_code == 200
            flows = await client.get("/v1/flows")
            assert error_of(flows) == (503, "dm_unavailable")
            assert flows.headers["retry-after"] == "1"
        async with open_call("no-dm", base_url=gateway.url) as call:
            failed = await call.start("booking_mri", "ru")
            assert (failed["type"], failed["code"]) == ("error", "dm_unavailable")


def dm_that_breaks_off() -> Starlette:
    """A dm whose turn stream stops after the backchannel, connection cut."""

    async def create(_request: Request) -> Response:
        call = {"call_id": "cut", "flow": "booking_mri", "lang": "ru", "node": "ask_name"}
        return JSONResponse({**call, "reply": "Hello", "state_version": 0}, status_code=201)

    async def turn(_request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            backchannel = {"type": "backchannel", "turn_id": "t1", "text": "Ok."}
            yield b"event: backchannel\ndata: " + orjson.dumps(backchannel) + b"\n\n"
            raise ConnectionAbortedError("dm went away")

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/calls", create, methods=["POST"]),
            Route("/v1/calls/{call_id}/turns", turn, methods=["POST"]),
        ]
    )


async def test_a_stream_that_breaks_off_ends_with_an_error(open_call: Any) -> None:
    with (
        ServerThread(dm_that_breaks_off()) as dm,
        ServerThread(create_app(gateway_settings(dm.url)), ws=True) as gateway,
    ):
        async with (
            httpx.AsyncClient(base_url=gateway.url) as client,
            client.stream(
                "POST", "/v1/calls/cut/turns", json={"turn_id": "t1", "text": "a"}, headers=SSE
            ) as streamed,
        ):
            events = await sse_events(streamed)
        assert [name for name, _ in events] == ["backchannel", "error"]
        assert events[-1][1]["code"] == "dm_unavailable"

        async with open_call("cut", base_url=gateway.url) as call:
            await call.start("booking_mri", "ru")
            messages = await call.turn("t1", "a")
            assert [m["type"] for m in messages] == ["backchannel", "error"]
            assert messages[-1]["code"] == "dm_unavailable"
            assert (await call.start("booking_mri", "ru"))["code"] == "call_already_started"
