"""A scripted dm double for gateway tests: records what the gateway sends, keeps call
owners the way dm does, and ends turns however a test asks (a transfer included)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

NOT_FOUND = {"error": {"code": "call_not_found", "message": "no such call"}}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeDm:
    """`partial_route`: False answers 404 not_found there, as a dm without the route does."""

    partial_route: bool = True
    partial_delay_s: float = 0.0
    call_delay_s: float = 0.0  # how long GET and DELETE of a call take
    # What the next turn ends with: merged into its turn.done; "done" ends the call.
    turn_end: dict[str, Any] = field(default_factory=dict)
    summary_extra: dict[str, Any] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    owners: dict[str, str | None] = field(default_factory=dict)

    def seen(self, method: str, path_part: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and path_part in r.path]

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/healthz", self._healthz),
                Route("/v1/calls", self._create, methods=["POST"]),
                Route("/v1/calls/{call_id}", self._call, methods=["GET", "DELETE"]),
                Route("/v1/calls/{call_id}/turns", self._turn, methods=["POST"]),
                Route("/v1/calls/{call_id}/partial", self._partial, methods=["POST"]),
                Route(
                    "/v1/calls/{call_id}/turns/{turn_id}/interrupt",
                    self._interrupt,
                    methods=["POST"],
                ),
            ]
        )

    async def _record(self, request: Request) -> Recorded:
        raw = await request.body()
        recorded = Recorded(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            orjson.loads(raw) if raw else None,
        )
        self.requests.append(recorded)
        return recorded

    def _visible(self, call_id: str, recorded: Recorded) -> bool:
        return call_id in self.owners and self.owners[call_id] == recorded.headers.get(
            "x-call-owner"
        )

    async def _healthz(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"status": "ok"})

    async def _create(self, request: Request) -> Response:
        recorded = await self._record(request)
        call_id = recorded.body["call_id"]
        if call_id in self.owners:
            error = {"code": "call_exists", "message": "exists"}
            return JSONResponse({"error": error}, status_code=409)
        self.owners[call_id] = recorded.headers.get("x-call-owner")
        created = {"call_id": call_id, "flow": recorded.body["flow"], "lang": "en"}
        return JSONResponse(
            {**created, "node": "ask_name", "reply": "Hello!", "state_version": 0}, status_code=201
        )

    async def _call(self, request: Request) -> Response:
        recorded = await self._record(request)
        await asyncio.sleep(self.call_delay_s)
        call_id = request.path_params["call_id"]
        if not self._visible(call_id, recorded):
            return JSONResponse(NOT_FOUND, status_code=404)
        state = {"call_id": call_id, "flow": "booking_mri", "lang": "en", "node": "ask_name"}
        ended = request.method == "DELETE"
        return JSONResponse({**state, "slots": {}, "ended": ended, **self.summary_extra})

    async def _turn(self, request: Request) -> Response:
        recorded = await self._record(request)
        if not self._visible(request.path_params["call_id"], recorded):
            return JSONResponse(NOT_FOUND, status_code=404)
        turn_id = recorded.body["turn_id"]
        done = {"type": "turn.done", "turn_id": turn_id, "reply": "Ok.", "done": False}
        done.update(self.turn_end)
        delta = {"type": "reply.delta", "turn_id": turn_id, "text": "Ok."}

        async def events() -> Any:
            for event in (delta, done):
                yield b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event)
                yield b"\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _partial(self, request: Request) -> Response:
        recorded = await self._record(request)
        if not self.partial_route:
            return JSONResponse({"error": {"code": "not_found", "message": "Not Found"}}, 404)
        if not self._visible(request.path_params["call_id"], recorded):
            return JSONResponse(NOT_FOUND, status_code=404)
        await asyncio.sleep(self.partial_delay_s)
        return JSONResponse({"status": "accepted"}, status_code=202)

    async def _interrupt(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"status": "cancelled"})
