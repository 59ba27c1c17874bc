"""`voicectl call`: be the caller on the gateway's WebSocket, typing instead of speaking.

Shows what a TTS pipeline would get: the greeting, the backchannel, reply deltas
as they stream, then per turn the node move, the slots and the timings (dm's,
and what this client measured). `/end` hangs up; Ctrl-C disconnects and leaves
the call open to resume with `--call-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from voicectl.console import Console

END_COMMAND = "/end"
OPEN_TIMEOUT_S = 10.0
# Longer than any turn can take (dm's deadline, 5 s by default, ends it well before).
REPLY_TIMEOUT_S = 30.0
MAX_FRAME_BYTES = 64 * 1024
CLOSE_MEANINGS = {
    1008: "auth failed or rate limited (check --token)",
    1009: "a frame was too big",
    1011: "internal error in the gateway",
    4409: "another connection took over this call",
}


class CallFailed(Exception):
    """The call cannot go on; the message says why."""


@dataclass(frozen=True)
class CallOptions:
    url: str
    flow: str
    lang: str
    call_id: str
    token: str | None
    script: Path | None


def new_call_id() -> str:
    return f"cli-{secrets.token_hex(4)}"


def socket_url(base: str, call_id: str) -> str:
    """`ws://host:port` (or http://…) → the call's WebSocket URL."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/v1/calls/{call_id}/ws"


def run_call(options: CallOptions, console: Console) -> int:
    url = socket_url(options.url, options.call_id)
    script = None
    if options.script is not None:
        script = [line.strip() for line in options.script.read_text(encoding="utf-8").splitlines()]
    try:
        return asyncio.run(_call(options, url, script, console))
    except KeyboardInterrupt:
        console.line("")
        console.say(
            f"disconnected; the call stays open: resume it with --call-id {options.call_id}"
        )
        return 130


async def _call(options: CallOptions, url: str, script: list[str] | None, console: Console) -> int:
    headers = {"Authorization": f"Bearer {options.token}"} if options.token else None
    try:
        async with connect(
            url,
            additional_headers=headers,
            open_timeout=OPEN_TIMEOUT_S,
            close_timeout=2.0,
            max_size=MAX_FRAME_BYTES,
            proxy=None,
        ) as ws:
            caller = Caller(ws, console)
            return await caller.run(options, script)
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = " (wrong or missing --token?)" if status == 401 else ""
        console.error(f"the gateway refused the call socket: HTTP {status}{hint}")
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else 1006
        meaning = CLOSE_MEANINGS.get(code, exc.rcvd.reason if exc.rcvd else "connection lost")
        console.error(f"the gateway closed the socket: {code} {meaning}")
    except CallFailed as exc:
        console.error(str(exc))
    except InvalidURI as exc:
        console.error(f"not a WebSocket URL: {exc.uri}")
    except (OSError, TimeoutError) as exc:
        console.error(
            f"cannot reach the gateway at {url} ({type(exc).__name__}): is `make run` running?"
        )
    return 1


class Caller:
    def __init__(self, ws: ClientConnection, console: Console) -> None:
        self.ws = ws
        self.console = console
        self.turns = 0
        self.turn_prefix = secrets.token_hex(3)
        self.errors = 0

    async def run(self, options: CallOptions, script: list[str] | None) -> int:
        await self._send({"type": "call.start", "flow": options.flow, "lang": options.lang})
        started = await self._receive()
        if started.get("type") != "call.started":
            raise CallFailed(f"the call did not start: {_describe_error(started)}")
        self._show_started(started, options)
        ended = False
        async for text in _utterances(script, self.console):
            if text == END_COMMAND:
                break
            ended = await self.turn(text)
            if ended:
                break
        if not ended:
            await self._send({"type": "call.end", "reason": "caller_hung_up"})
            await self._until_ended()
        return 1 if self.errors else 0

    async def turn(self, text: str) -> bool:
        """One caller utterance through to `turn.done`; True when the call is over."""
        self.turns += 1
        turn_id = f"cli-{self.turn_prefix}-{self.turns}"
        sent_at = time.monotonic()
        await self._send({"type": "user.final", "turn_id": turn_id, "text": text})
        heard: dict[str, float] = {}
        streaming = False
        while True:
            message = await self._receive()
            kind = message.get("type")
            elapsed_ms = (time.monotonic() - sent_at) * 1000
            if kind == "backchannel":
                heard.setdefault("backchannel", elapsed_ms)
                backchannel = f"{message['text']}  (backchannel)"
                self.console.line(self._agent(self.console.paint(backchannel, "dim")))
            elif kind == "reply.delta":
                if not streaming:
                    heard["first words"] = elapsed_ms
                    self.console.stream.write(self._agent(""))
                    streaming = True
                self.console.stream.write(str(message["text"]))
                self.console.stream.flush()
            elif kind == "turn.done":
                if streaming:
                    self.console.line("")
                elif message.get("reply"):
                    self.console.line(self._agent(str(message["reply"])))
                heard["done"] = elapsed_ms
                self.console.line(self.console.paint(turn_summary(message, heard), "dim"))
                if message.get("done"):
                    await self._until_ended()
                    return True
                return False
            elif kind in ("turn.cancelled", "error"):
                if streaming:
                    self.console.line("")
                if kind == "error":
                    self.errors += 1
                self.console.error(_describe_error(message))
                return False
            elif kind == "call.ended":
                self._show_ended(message)
                return True

    async def _until_ended(self) -> None:
        while True:
            message = await self._receive()
            if message.get("type") == "call.ended":
                self._show_ended(message)
                return
            if message.get("type") == "error":
                self.errors += 1
                self.console.error(_describe_error(message))
                return

    async def _send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message, ensure_ascii=False))

    async def _receive(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                frame = await self.ws.recv()
        except TimeoutError:
            raise CallFailed(f"no answer from the gateway in {REPLY_TIMEOUT_S:.0f}s") from None
        message = json.loads(frame)
        if not isinstance(message, dict):
            raise CallFailed(f"unexpected frame from the gateway: {frame!r}")
        return message

    def _agent(self, text: str) -> str:
        return self.console.paint("agent>", "green") + " " + text

    def _show_started(self, message: dict[str, Any], options: CallOptions) -> None:
        call_id, node = message.get("call_id"), message.get("node")
        if message.get("resumed"):
            what = f"call {call_id} resumed at node {node}"
        else:
            what = f"call {call_id} started: flow {options.flow} ({options.lang}), node {node}"
        self.console.say(f"{what}; type as the caller, {END_COMMAND} hangs up")
        if message.get("reply"):
            self.console.line(self._agent(str(message["reply"])))

    def _show_ended(self, message: dict[str, Any]) -> None:
        summary = message.get("summary")
        if isinstance(summary, dict):
            # The exchanges were on screen already.
            summary = {key: value for key, value in summary.items() if key != "history"}
        self.console.say("call ended; summary:")
        self.console.line(json.dumps(summary, ensure_ascii=False, indent=2))


def turn_summary(result: dict[str, Any], heard: dict[str, float]) -> str:
    """One line under a reply: node move, slots, dm's timings, tokens, what the client saw."""
    slots = result.get("slots") or {}
    filled = " ".join(f"{name}={value}" for name, value in slots.items() if value is not None)
    timings = result.get("timings") or {}
    ttft = timings.get("llm_ttft_ms")
    if result.get("understood_by") == "rules":
        dm = f"dm {timings.get('total_ms', 0):.0f} ms (by rules, no LLM call)"
    else:
        dm = (
            f"dm {timings.get('total_ms', 0):.0f} ms (llm {timings.get('llm_ms', 0):.0f}, "
            f"first token {f'{ttft:.0f}' if ttft is not None else '-'}, "
            f"state {timings.get('state_ms', 0):.1f}) · "
            f"{(result.get('usage') or {}).get('completion_tokens', 0)} tokens"
        )
    parts = [
        f"{result.get('node_before')} → {result.get('next_node')}",
        f"slots: {filled or 'none yet'}",
        dm,
        "heard " + ", ".join(f"{what} {ms:.0f} ms" for what, ms in heard.items()),
    ]
    if result.get("fallback"):
        parts.append(f"fallback: {result.get('fallback_reason')}")
    if result.get("done"):
        parts.append(f"call done: {result.get('outcome') or 'completed'}")
    return "       " + " · ".join(parts)


def _describe_error(message: dict[str, Any]) -> str:
    if message.get("type") == "turn.cancelled":
        return f"turn {message.get('turn_id')} was cancelled"
    if message.get("type") == "error":
        return f"{message.get('code')}: {message.get('message')}"
    return json.dumps(message, ensure_ascii=False)


async def _utterances(script: list[str] | None, console: Console) -> AsyncIterator[str]:
    """The caller's lines: a script's non-empty lines, or what the user types."""
    prompt = console.paint("you>", "cyan") + " "
    if script is not None:
        for text in filter(None, script):
            console.line(prompt + text)
            yield text
        return
    while True:
        line = await _read_line(prompt, console.stream)
        if line is None:
            return
        if line.strip():
            yield line.strip()


async def _read_line(prompt: str, stream: TextIO) -> str | None:
    """input() in a daemon thread: a Ctrl-C leaves no thread for the interpreter to wait for."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def deliver(line: str | None) -> None:
        if not future.done():
            future.set_result(line)

    def read() -> None:
        stream.write(prompt)
        stream.flush()
        try:
            line: str | None = input()
        except EOFError:
            line = None
        # RuntimeError: the loop is gone, the user pressed Ctrl-C while typing.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=read, daemon=True).start()
    return await future
