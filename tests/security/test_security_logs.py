"""No API key and no caller's words in any log line of any service.

A whole call runs through the real services as processes (gateway → dm with Redis →
llm-local → a scripted LLM), keyed at every hop, the caller's key in `?token=` on the
WebSocket as a browser sends it; a REST turn, a refused turn and an LLM failure are
part of it. Then every line every service wrote is searched for the keys and for
what the caller said, both as written and as JSON escapes it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from security_harness import Keys, Stack, running_stack
from websockets.asyncio.client import connect

from svckit.logging import LogScrubber, known_secrets, render_exception
from voicectl.scripted_llm import ScriptedLLM, ScriptedReply

KEYS = Keys(
    gateway="gw-" + secrets.token_hex(12),
    dm="dm-" + secrets.token_hex(12),
    llm="llm-" + secrets.token_hex(12),
    upstream="up-" + secrets.token_hex(12),
)
# What the caller says (and the LLM hears back): none of it may reach a log.
NAME = "Евфросиния"
PHONE_DIGITS = "9165550123"
CALLER_WORDS = [NAME, PHONE_DIGITS, "xylophone", "Zanzibar"]


LLM = ScriptedLLM()


@pytest.fixture(scope="module")
def call_logs(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("logs")
    # DEBUG: the most any service writes; INFO lines are among them.
    with running_stack(redis_server.url, log_dir, LLM.app, KEYS, log_level="debug") as stack:
        yield stack


def says(**fields: Any) -> None:
    LLM.push(ScriptedReply(content=json.dumps(fields, ensure_ascii=False)))


async def recv_until(ws: Any, *kinds: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1]["type"] not in kinds:
        messages.append(orjson.loads(await ws.recv()))
    return messages


async def a_whole_call(stack: Stack) -> None:
    ws_url = stack.gateway_url.replace("http://", "ws://")
    async with connect(f"{ws_url}/v1/calls/audit-1/ws?token={KEYS.gateway}") as ws:

        async def send(kind: str, **fields: Any) -> None:
            await ws.send(orjson.dumps({"type": kind, **fields}).decode())

        await send("call.start", flow="booking_mri", lang="ru", metadata={"note": "Zanzibar"})
        assert (await recv_until(ws, "call.started", "error"))[-1]["type"] == "call.started"
        await send("user.partial", text=f"меня зовут {NAME}")
        says(slots={"name": NAME}, next_node="ask_phone")
        await send("user.final", turn_id="t1", text=f"Меня зовут {NAME}, я играю на xylophone")
        assert (await recv_until(ws, "turn.done", "error"))[-1]["type"] == "turn.done"
        # A bad frame quoting the caller: the error names the field, not the words.
        await send("user.final", turn_id="bad id", text=f"{NAME} {PHONE_DIGITS}")
        assert (await recv_until(ws, "error"))[-1]["code"] == "invalid_field"
        LLM.push(ScriptedReply(status=500))  # the LLM fails: dm falls back
        await send("user.final", turn_id="t2", text=f"8 {PHONE_DIGITS}")
        await recv_until(ws, "turn.done", "error")
        await send("call.end", reason=f"{NAME} hung up")
        assert (await recv_until(ws, "call.ended"))[-1]["type"] == "call.ended"

    headers = {"Authorization": f"Bearer {KEYS.gateway}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers) as client:
        body = {"flow": "booking_mri", "lang": "ru", "call_id": "audit-2"}
        assert (await client.post("/v1/calls", json=body)).status_code == 201
        says(slots={"name": NAME}, next_node="ask_phone")
        turn = {"turn_id": "t1", "text": f"{NAME}, Zanzibar"}
        assert (await client.post("/v1/calls/audit-2/turns", json=turn)).status_code == 200
        invisible = {"turn_id": "t2", "text": "\u200b\x00"}
        assert (await client.post("/v1/calls/audit-2/turns", json=invisible)).status_code == 422
        assert (await client.get("/v1/calls/audit-2")).json()["slots"]["name"]
        wrong_key = {"Authorization": f"Bearer {KEYS.gateway}x"}
        assert (await client.get("/v1/flows", headers=wrong_key)).status_code == 401


def leaks(line: str, needles: list[str]) -> list[str]:
    """The needles in a line, as written or inside any JSON string of it."""
    texts = [line]
    with contextlib.suppress(ValueError):
        texts.append(json.dumps(json.loads(line), ensure_ascii=False))
    return [needle for needle in needles if any(needle in text for text in texts)]


async def test_no_key_and_no_caller_words_in_any_log_line(call_logs: Stack) -> None:
    await a_whole_call(call_logs)
    call_logs.stop()  # shutdown lines too
    lines = call_logs.lines()
    needles = [KEYS.gateway, KEYS.dm, KEYS.llm, KEYS.upstream, *CALLER_WORDS]
    found = {
        f"{name}: {line}": leaks(line, needles)
        for name, service_lines in lines.items()
        for line in service_lines
        if leaks(line, needles)
    }
    assert found == {}
    # Off a terminal every line is one JSON object: scrubbing broke none of them.
    for name, service_lines in lines.items():
        for line in service_lines:
            assert isinstance(json.loads(line), dict), f"{name}: {line}"
    # The audit read what it should: the lines that used to carry a key or words are there.
    gateway = "\n".join(lines["gateway"])
    assert "token=[redacted]" in gateway  # uvicorn's `WebSocket /v1/calls/…/ws?token=` line
    assert any('"event": "turn"' in line for line in lines["dm"])
    assert any("llm_failed" in line for line in lines["dm"])
    assert lines["llm-local"]


def test_exception_traces_keep_types_and_stacks_not_messages() -> None:
    try:
        try:
            int(f"{NAME}²")
        except ValueError as exc:
            raise KeyError(NAME) from exc
    except KeyError as exc:
        rendered = render_exception(exc)
    assert NAME not in rendered
    assert "ValueError: [redacted]" in rendered
    assert "KeyError: [redacted]" in rendered
    assert "test_security_logs.py" in rendered  # the stack is still there
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 8081)")
    assert "Connect call failed ('127.0.0.1', 8081)" in render_exception(refused)


def test_a_key_in_any_form_is_scrubbed(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LLM_UPSTREAM_API_KEY=from-dotenv-file\n")
    found = known_secrets(
        {"GATEWAY_API_KEYS": "k-one, k-two", "REDIS_URL": "redis://dm:pa55word@redis:6379/0"},
        env_file,
    )
    assert found == {"k-one", "k-two", "pa55word", "from-dotenv-file"}
    scrub = LogScrubber(found).scrub
    assert scrub("GET /ws?token=anything&x=1") == "GET /ws?token=[redacted]&x=1"
    assert scrub("Authorization: Bearer abc.def") == "Authorization: Bearer [redacted]"
    assert scrub("redis://dm:other@redis:6379") == "redis://dm:[redacted]@redis:6379"
    assert "k-two" not in scrub('{"event": "key k-two used"}')
