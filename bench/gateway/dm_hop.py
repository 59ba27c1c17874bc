"""The cost of the gateway → dm hop: one streamed turn over HTTP/1.1, three clients.

    .venv/bin/python -m bench.gateway.dm_hop [--requests 3000] [--concurrency 1 100]

Each client POSTs a turn to an instant stub dm (bench/gateway/stub_dm.py, a
separate process) with `Accept: text/event-stream` and reads the four SSE
events, over keep-alive connections: httpx, httpcore (httpx's own transport,
without httpx's models) and aiohttp (what the gateway and dm use). CPU per
request is this process's CPU time divided by the requests; the stub's CPU is
not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpcore
import httpx
import orjson

from bench.gateway.ws_load import stub_dm
from bench.processes import machine, percentile

BODY = orjson.dumps({"turn_id": "t1", "text": "Меня зовут Мария"})
HEADERS = {"accept": "text/event-stream", "content-type": "application/json"}
EVENTS_PER_TURN = 4

Turn = Callable[[], Awaitable[int]]


def count_events(data: bytes) -> int:
    return data.count(b"\n\n")


async def httpx_client(url: str, concurrency: int) -> tuple[Turn, Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        trust_env=False,
    )

    async def turn() -> int:
        events = 0
        async with client.stream("POST", url, content=BODY, headers=HEADERS) as response:
            async for chunk in response.aiter_raw():
                events += count_events(chunk)
        return events

    return turn, client.aclose


async def httpcore_client(url: str, concurrency: int) -> tuple[Turn, Callable[[], Awaitable[None]]]:
    pool = httpcore.AsyncConnectionPool(max_connections=concurrency)
    headers = list(HEADERS.items())

    async def turn() -> int:
        events = 0
        async with pool.stream("POST", url, headers=headers, content=BODY) as response:
            async for chunk in response.aiter_stream():
                events += count_events(chunk)
        return events

    return turn, pool.aclose


async def aiohttp_client(url: str, concurrency: int) -> tuple[Turn, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async def turn() -> int:
        events = 0
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            async for chunk in response.content.iter_any():
                events += count_events(chunk)
        return events

    return turn, session.close


CLIENTS = {
    "httpx": httpx_client,
    "httpcore": httpcore_client,
    "aiohttp": aiohttp_client,
}


async def measure(
    name: str, url: str, requests: int, concurrency: int
) -> tuple[float, float, float, float]:
    """CPU ms per request, latency p50 and p99 ms, requests/s."""
    turn, close = await CLIENTS[name](url, concurrency)
    for _ in range(min(requests // 10, 200)):
        await turn()  # warm-up: connections, caches
    latencies: list[float] = []
    per_worker = requests // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            started = time.perf_counter()
            if await turn() != EVENTS_PER_TURN:
                raise RuntimeError("a turn came back incomplete")
            latencies.append((time.perf_counter() - started) * 1000)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    done = per_worker * concurrency
    return (
        cpu * 1000 / done,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        done / wall,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--rounds", type=int, default=3, help="runs per client, best kept")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: {' '.join(sys.argv)}\n")
    print("| client | concurrent | CPU ms/request | p50 ms | p99 ms | requests/s |")
    print("|---|---|---|---|---|---|")
    with stub_dm() as dm_url:
        url = f"{dm_url}/v1/calls/c1/turns"
        for concurrency in args.concurrency:
            for name in CLIENTS:
                # Interleaved rounds, best CPU kept: the machine is shared and noisy.
                runs = [
                    asyncio.run(measure(name, url, args.requests, concurrency))
                    for _ in range(args.rounds)
                ]
                cpu, p50, p99, rate = min(runs)
                print(
                    f"| {name} | {concurrency} | {cpu:.3f} | {p50:.2f} | {p99:.2f} | {rate:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
