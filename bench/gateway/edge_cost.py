"""What the door's checks cost per request, measured in one process without the network.

    .venv/bin/python -m bench.gateway.edge_cost [--requests 20000] [--repeats 7]

On a busy shared machine a whole-stack load moves by more than these checks cost, so
each is timed here against the same thing without it, interleaved, best of the repeats,
on uvloop as uvicorn runs them:

- the HTTP protocol: uvicorn's `HttpToolsProtocol` against `svckit.server.EdgeHttpProtocol`
  (head size, head and body deadlines, connection cap), a kept-alive connection, a
  minimal app;
- the gateway's load shedding (`InFlightLimit`) around a minimal app.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import uvicorn
import uvloop
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bench.processes import machine
from gateway.shedding import InFlightLimit
from svckit.server import EdgeHttpProtocol

REQUEST = b"GET /v1/calls/bench-1 HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer k\r\n\r\n"


async def minimal_app(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


class NullTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.answered = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.answered.set()

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name in ("sockname", "peername") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def protocol_us(protocol_class: type[asyncio.Protocol], requests: int) -> float:
    """Microseconds of CPU per request on one kept-alive connection."""
    config = uvicorn.Config(minimal_app, http=protocol_class, log_config=None, lifespan="off")
    config.load()
    make: Any = protocol_class  # uvicorn's protocols take more than asyncio.Protocol does
    protocol = make(config=config, server_state=ServerState(), app_state={})
    transport = NullTransport()
    protocol.connection_made(transport)
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        await transport.answered.wait()  # the app's task answers on the next loop turns
        transport.answered.clear()
    elapsed = time.process_time() - started
    protocol.connection_lost(None)
    return elapsed / requests * 1e6


async def app_us(app: ASGIApp, requests: int) -> float:
    scope = {"type": "http", "path": "/v1/calls/bench-1", "method": "GET", "headers": []}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Message) -> None:
        pass

    started = time.process_time()
    for _ in range(requests):
        await app(scope, receive, send)
    return (time.process_time() - started) / requests * 1e6


def shedding(app: ASGIApp) -> ASGIApp:
    registry = CollectorRegistry()
    gauge = Gauge("in_flight", "", registry=registry)
    errors = Counter("errors", "", ["code"], registry=registry)
    return InFlightLimit(app, 512, gauge, errors)


def compare(name: str, runs: dict[str, Callable[[], float]], repeats: int) -> None:
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeats):
        for label, run in runs.items():
            times[label].append(run())
    for label, values in times.items():
        print(
            f"| {name} | {label} | {min(values):.1f} | {statistics.median(values):.1f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n = args.requests
    print(f"machine: {machine()}")
    print(f"command: {' '.join(sys.argv)}\n")
    print("| layer | variant | µs CPU/request, best | median |\n|---|---|---|---|")
    compare(
        "HTTP protocol",
        {
            "uvicorn HttpToolsProtocol": lambda: uvloop.run(protocol_us(HttpToolsProtocol, n)),
            "EdgeHttpProtocol": lambda: uvloop.run(protocol_us(EdgeHttpProtocol, n)),
        },
        args.repeats,
    )
    compare(
        "load shedding",
        {
            "minimal app": lambda: uvloop.run(app_us(minimal_app, n)),
            "InFlightLimit": lambda: uvloop.run(app_us(shedding(minimal_app), n)),
        },
        args.repeats,
    )


if __name__ == "__main__":
    main()
