"""An instant stand-in for dm on raw asyncio, to load the gateway alone.

It answers what the gateway asks of dm: `POST /v1/calls` (201), a streamed turn
(`backchannel`, two `reply.delta`, `turn.done`, at once, chunked), the interrupt, `GET` and
`DELETE` of a call, and `/healthz`; each in microseconds, so the gateway is the
only thing a load test measures.

    python -m bench.gateway.stub_dm PORT
"""

from __future__ import annotations

import asyncio
import sys

import orjson

JSON_HEAD = b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
# A streamed turn comes chunked, one event per chunk, as uvicorn sends dm's SSE.
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
PIECES = ("Угу, записываю. ", "Назовите телефон.")
CALL = {"flow": "booking_mri", "lang": "ru", "node": "ask_name", "state_version": 0}


def sse(name: str, data: dict[str, object]) -> bytes:
    payload = orjson.dumps({"type": name, **data})
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def chunked(*events: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


def turn(call_id: str, body: bytes) -> bytes:
    turn_id = orjson.loads(body)["turn_id"]
    done = {
        "call_id": call_id,
        "turn_id": turn_id,
        "node_before": "ask_name",
        "reply": "".join(PIECES),
        "next_node": "ask_phone",
        "slots": {"name": None},
        "backchannel": "Так.",
        "done": False,
        "fallback": False,
        "fallback_reason": None,
        "timings": {"total_ms": 0.0, "llm_ms": 0.0, "llm_ttft_ms": None, "state_ms": 0.0},
        "usage": {"completion_tokens": 0},
        "state_version": 1,
    }
    return SSE_HEAD + chunked(
        sse("backchannel", {"turn_id": turn_id, "text": "Так."}),
        *(sse("reply.delta", {"turn_id": turn_id, "text": piece}) for piece in PIECES),
        sse("turn.done", done),
    )


def answer(method: bytes, path: str, body: bytes) -> bytes:
    parts = path.strip("/").split("/")
    if method == b"GET" and path == "/healthz":
        return json(200, b'{"status": "ok"}')
    if method == b"POST" and path == "/v1/calls":
        call_id = orjson.loads(body)["call_id"]
        return json(201, orjson.dumps({**CALL, "call_id": call_id, "reply": "Здравствуйте!"}))
    if method == b"POST" and len(parts) == 4 and parts[3] == "turns":
        return turn(parts[2], body)
    if method == b"POST" and len(parts) == 6 and parts[5] == "interrupt":
        return json(200, b'{"status": "cancelled"}')
    if method in (b"GET", b"DELETE") and len(parts) == 3:
        described = {**CALL, "call_id": parts[2], "slots": {}, "turns": 0, "ended": True}
        return json(200, orjson.dumps(described))
    return json(404, b'{"error": {"code": "not_found", "message": "no such path"}}')


def json(status: int, payload: bytes) -> bytes:
    return JSON_HEAD % (status, len(payload)) + payload


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *headers = head.split(b"\r\n")
            method, target, _ = request_line.split(b" ", 2)
            length = 0
            for line in headers:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            writer.write(answer(method, target.decode(), body))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
