"""An instant OpenAI-compatible streaming LLM on raw asyncio, for load benchmarks.

`voicectl.scripted_llm` (Starlette) is the test double; under load its own CPU
would compete with the service measured on a 2-core machine. This one parses the
request, answers the smallest object valid for its JSON schema in three SSE
chunks, and costs tens of microseconds per request.

    python -m bench.instant_llm PORT [STALL_S]
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from voicectl.scripted_llm import minimal_instance, request_schema

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"


def _chunk(delta: dict[str, str], finish: str | None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return (
        b"data: " + orjson.dumps({"object": "chat.completion.chunk", "choices": [choice]}) + b"\n\n"
    )


def completion(body: bytes) -> bytes:
    request = orjson.loads(body)
    schema = request_schema(request)
    content = orjson.dumps(minimal_instance(schema)).decode() if schema else "ok"
    third = max(1, len(content) // 3)
    pieces = [content[:third], content[third : 2 * third], content[2 * third :]]
    usage = {"object": "chat.completion.chunk", "choices": [], "usage": {"completion_tokens": 3}}
    return b"".join(
        [
            *(_chunk({"content": piece}, None) for piece in pieces if piece),
            _chunk({}, "stop"),
            b"data: " + orjson.dumps(usage) + b"\n\n",
            b"data: [DONE]\n\n",
        ]
    )


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stall_s: float
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if head.startswith(b"POST"):
                if stall_s:
                    await asyncio.sleep(stall_s)
                payload = completion(body)
                writer.write(HEAD % (b"text/event-stream", len(payload)) + payload)
            else:
                payload = b'{"object": "list", "data": [{"id": "instant"}]}'
                writer.write(HEAD % (b"application/json", len(payload)) + payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, stall_s: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, stall_s), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
