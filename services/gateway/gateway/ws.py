"""The call WebSocket transport: a thin I/O layer around `protocol.CallSession`.

Per socket, a reader and a writer task run in one TaskGroup with the socket's
dm requests; whichever ends the socket (a close we send, the client gone, a
bug) cancels the rest. Only the writer sends, in order, from one queue. Every
network await runs under `asyncio.timeout`. A turn in flight when the socket
goes keeps running in dm, which stores it; barge-ins and call ends go to dm as
detached tasks so they arrive even when the caller hangs up right after.

The handshake refuses a bad call id with an HTTP 422. A missing or wrong key, a
rate-limited key or a key at its socket cap gets the socket accepted, one `error`
message and close 1008, as the contract's close codes say.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Coroutine
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.auth import Caller
from gateway.deps import GatewayDeps
from gateway.dm_client import DmError
from gateway.partials import LatestOnly
from gateway.protocol import (
    CLOSE_POLICY,
    EVENT_CALL_TRANSFER,
    Action,
    CallSession,
    CancelTurn,
    Close,
    EndCall,
    ForwardPartial,
    LatencyMark,
    OpenCall,
    Send,
    StartTurn,
    error,
)
from svckit.errors import error_response
from svckit.wire import ID_MAX_CHARS, ID_PATTERN

log = structlog.get_logger("gateway.ws")

MAX_FRAME_BYTES = 64 * 1024
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TAKEN_OVER = 4409
CLOSE_TIMEOUT_S = 2.0
TURN_OUTCOMES = {"turn.done": "done", "turn.cancelled": "cancelled", "error": "error"}
CALL_ID = re.compile(ID_PATTERN)


class _SocketDone(Exception):
    """The socket is finished: we closed it or the client went away."""


async def serve_call_socket(websocket: WebSocket, call_id: str, deps: GatewayDeps) -> None:
    """Check the handshake (call id, key, limits, socket cap), then run the socket."""
    structlog.contextvars.bind_contextvars(call_id=call_id)
    if len(call_id) > ID_MAX_CHARS or not CALL_ID.fullmatch(call_id):
        await _deny(websocket, deps, 422, "invalid_field", "call_id must match " + ID_PATTERN)
        return
    caller = deps.auth.identify(
        websocket.headers.get("authorization"), websocket.query_params.get("token")
    )
    if caller is None:
        await _refuse(websocket, deps, "unauthorized", "missing or invalid API key")
        return
    wait = deps.limits.admit(caller.label, call_id)
    if wait:
        message = f"too many requests; retry in {math.ceil(wait)} s"
        await _refuse(websocket, deps, "rate_limited", message)
        return
    if not deps.sockets.open(caller.label):
        limit = deps.sockets.max_per_key
        await _refuse(websocket, deps, "too_many_sockets", f"this key has {limit} sockets open")
        return
    try:
        async with asyncio.timeout(deps.settings.gateway_ws_send_timeout_s):
            await websocket.accept()
        await CallSocket(websocket, call_id, caller, deps).run()
    finally:
        deps.sockets.close(caller.label)


async def _deny(
    websocket: WebSocket, deps: GatewayDeps, status: int, code: str, message: str
) -> None:
    """Refuse the upgrade with an HTTP error, or with close 1008 where the server cannot."""
    deps.metrics.errors.labels(code).inc()
    async with asyncio.timeout(deps.settings.gateway_ws_send_timeout_s):
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(error_response(status, code, message))
        else:
            await websocket.close(CLOSE_POLICY, message)


async def _refuse(websocket: WebSocket, deps: GatewayDeps, code: str, message: str) -> None:
    """Accept, say why in an `error` message, and close with 1008."""
    deps.metrics.errors.labels(code).inc()
    deps.metrics.closes.labels(str(CLOSE_POLICY)).inc()
    try:
        async with asyncio.timeout(deps.settings.gateway_ws_send_timeout_s):
            await websocket.accept()
            await websocket.send_text(error(code, message).text)
            await websocket.close(CLOSE_POLICY, code)
    except (WebSocketDisconnect, RuntimeError, TimeoutError):
        pass  # the client is gone already


def too_big(frame: str | bytes) -> bool:
    if len(frame) > MAX_FRAME_BYTES:
        return True
    # A UTF-8 character is at most 4 bytes: only long text needs encoding to measure.
    return (
        isinstance(frame, str)
        and len(frame) > MAX_FRAME_BYTES // 4
        and (len(frame.encode()) > MAX_FRAME_BYTES)
    )


class CallSocket:
    """One accepted call WebSocket."""

    def __init__(
        self, websocket: WebSocket, call_id: str, caller: Caller, deps: GatewayDeps
    ) -> None:
        self.ws = websocket
        self.call_id = call_id
        self.caller = caller
        self.deps = deps
        self.session = CallSession(call_id)
        self._partials = LatestOnly(
            deps.settings.gateway_partial_interval_s, self._forward_partial, self._spawn_owned
        )
        self._partials_accepted = True  # until dm says it has no partial route
        self._outbox: asyncio.Queue[str | Close] = asyncio.Queue()
        self._tasks: asyncio.TaskGroup | None = None
        self._turn_started: dict[int, float] = {}  # turn seq → when its user.final arrived
        self._turn_reached_dm: dict[int, asyncio.Event] = {}
        # The last barge-in sent to dm: the next turn and the call's end wait for it.
        self._cancelling: asyncio.Task[None] | None = None

    def take_over(self) -> None:
        self._outbox.put_nowait(Close(CLOSE_TAKEN_OVER, "another connection took over the call"))

    async def run(self) -> None:
        metrics = self.deps.metrics
        metrics.active_sockets.inc()
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self._read())
                tasks.create_task(self._write())
                tasks.create_task(self._start_deadline())
        except* _SocketDone:
            pass
        except* Exception as failure:
            log.error("socket_failed", exc_info=failure)
            await self._close(Close(CLOSE_INTERNAL, "internal error"))
        finally:
            self.deps.sockets.release(self.call_id, self)
            metrics.active_sockets.dec()

    # Reader and writer.

    async def _read(self) -> None:
        settings = self.deps.settings
        while True:
            try:
                async with asyncio.timeout(settings.gateway_ws_idle_timeout_s):
                    frame = await self.ws.receive()
            except TimeoutError:
                self._apply([Close(1000, "idle")])
                return
            if frame["type"] == "websocket.disconnect":
                raise _SocketDone
            received_at = time.perf_counter()
            text: str | None = frame.get("text")
            payload: str | bytes = text if text is not None else frame.get("bytes") or b""
            if too_big(payload):
                self._apply([Close(CLOSE_TOO_BIG, "frame over 64 KiB")])
                return
            if self.deps.limits.admit(self.caller.label, self.call_id):
                limited = error("rate_limited", "too many messages")
                self._apply([limited, Close(CLOSE_POLICY, "rate limited")])
                return
            self._apply(self.session.receive(payload), received_at)

    async def _start_deadline(self) -> None:
        timeout_s = self.deps.settings.gateway_ws_start_timeout_s
        await asyncio.sleep(timeout_s)
        self._apply(self.session.start_timed_out(timeout_s))

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, Close):
                await self._close(item)
                raise _SocketDone
            try:
                async with asyncio.timeout(self.deps.settings.gateway_ws_send_timeout_s):
                    await self.ws.send_text(item)
            except (WebSocketDisconnect, RuntimeError):
                # RuntimeError: the server closed the socket itself (a frame over 64 KiB
                # gets 1009 from uvicorn) before the reader saw the disconnect.
                raise _SocketDone from None
            except TimeoutError:
                log.warning("socket_send_timeout")
                raise _SocketDone from None

    async def _close(self, close: Close) -> None:
        self.deps.metrics.closes.labels(str(close.code)).inc()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.ws.close(close.code, close.reason)
        except (WebSocketDisconnect, RuntimeError, TimeoutError):
            pass  # the client is gone already, or the socket was closed

    # Actions.

    def _apply(self, actions: list[Action], received_at: float | None = None) -> None:
        for action in actions:
            match action:
                case Send():
                    self._send(action)
                case Close():
                    self._outbox.put_nowait(action)
                case OpenCall():
                    self._spawn_owned(self._open_call(action))
                case StartTurn():
                    self._partials.drop()  # the utterance they were part of is final now
                    self._turn_started[action.seq] = received_at or time.perf_counter()
                    reached_dm = self._turn_reached_dm[action.seq] = asyncio.Event()
                    self._spawn_owned(self._stream_turn(action, reached_dm, self._cancelling))
                case CancelTurn():
                    self.deps.metrics.barge_ins.labels(action.trigger).inc()
                    self._cancelling = self.deps.detached.spawn(
                        self._cancel_turn(action, self._turn_reached_dm.get(action.seq))
                    )
                case ForwardPartial():
                    if self._partials_accepted and self._partials.offer(action.text):
                        self.deps.metrics.partials.labels("coalesced").inc()
                case EndCall():
                    self.deps.detached.spawn(self._end_call(self._cancelling))

    def _send(self, send: Send) -> None:
        self._outbox.put_nowait(send.text)
        metrics = self.deps.metrics
        if send.kind == EVENT_CALL_TRANSFER:
            metrics.transfers.labels(send.code or "other").inc()
        elif send.code is not None:
            metrics.errors.labels(send.code).inc()
        if send.turn_seq is None:
            return
        started = self._turn_started.get(send.turn_seq)
        if started is None:
            return
        if send.mark is LatencyMark.BACKCHANNEL:
            metrics.backchannel_seconds.observe(time.perf_counter() - started)
        elif send.mark is LatencyMark.FIRST_DELTA:
            metrics.first_delta_seconds.observe(time.perf_counter() - started)
        outcome = TURN_OUTCOMES.get(send.kind)
        if outcome is not None:
            metrics.turns.labels(outcome).inc()
            del self._turn_started[send.turn_seq]
            self._turn_reached_dm.pop(send.turn_seq, None)

    def _spawn_owned(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a dm request that ends with this socket."""
        assert self._tasks is not None
        self._tasks.create_task(coro)

    # dm requests.

    async def _open_call(self, action: OpenCall) -> None:
        try:
            opened = await self.deps.dm.open_call(
                self.call_id, action.flow, action.lang, action.metadata, self.caller.owner
            )
        except DmError as exc:
            self._apply(self.session.call_open_failed(exc.code, exc.message))
            return
        # dm accepted it for this key: only now may this socket take the call over.
        self.deps.sockets.claim(self.call_id, self)
        self._apply(self.session.call_opened(opened.node, opened.reply, opened.resumed))

    async def _stream_turn(
        self, action: StartTurn, reached_dm: asyncio.Event, after: asyncio.Task[None] | None
    ) -> None:
        if after is not None:
            # dm holds on to the turn barged in on until the interrupt returns.
            await asyncio.wait({after})
        events = self.deps.dm.turn_events(
            self.call_id, action.turn_id, action.text, self.caller.owner
        )
        code, message = "dm_unavailable", "the turn's stream ended early"
        try:
            async with asyncio.timeout(self.deps.settings.gateway_dm_timeout_s):
                async for data in events:
                    reached_dm.set()
                    self._apply(self.session.turn_event(action.seq, data))
        except DmError as exc:
            code, message = exc.code, exc.message
        except TimeoutError:
            message = "the turn timed out"
        finally:
            reached_dm.set()
        self._apply(self.session.turn_failed(action.seq, code, message))

    async def _cancel_turn(self, action: CancelTurn, reached_dm: asyncio.Event | None) -> None:
        try:
            if reached_dm is not None:
                # An interrupt that overtook its turn would find nothing to cancel in dm.
                async with asyncio.timeout(self.deps.settings.gateway_dm_timeout_s):
                    await reached_dm.wait()
            status = await self.deps.dm.interrupt(
                self.call_id, action.turn_id, action.heard, self.caller.owner
            )
        except (DmError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, DmError) else "dm_unavailable"
            self.deps.metrics.errors.labels(code).inc()
            log.warning("interrupt_failed", turn_id=action.turn_id, code=code)
            return
        log.info("barge_in", turn_id=action.turn_id, trigger=action.trigger, outcome=status)

    async def _end_call(self, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait({after})
        try:
            summary = await self.deps.dm.end_call(self.call_id, self.caller.owner)
        except DmError as exc:
            self._apply(self.session.call_end_failed(exc.code, exc.message))
            return
        self._apply(self.session.call_ended(summary))

    async def _forward_partial(self, text: str) -> None:
        try:
            await self.deps.dm.partial(self.call_id, text, self.caller.owner)
        except DmError as exc:
            self.deps.metrics.partials.labels("refused").inc()
            if exc.code == "not_found":  # a dm without the route: stop asking
                self._partials_accepted = False
            return
        self.deps.metrics.partials.labels("forwarded").inc()
