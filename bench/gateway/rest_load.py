"""REST requests through one gateway process in front of the instant stub dm.

    .venv/bin/python -m bench.gateway.rest_load [--connections 50] [--seconds 10]

Every request passes what guards the door (svckit.server: head size and time, the
connection cap) and the app's shedding; the stub dm answers in microseconds, so the
gateway is what is measured: requests/s, latency, and the gateway's CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp

from bench.gateway.ws_load import cpu_seconds, stub_dm
from bench.processes import gateway, machine, percentile


async def worker(
    session: aiohttp.ClientSession,
    base: str,
    until: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    number = 0
    while time.monotonic() < until:
        number += 1
        started = time.perf_counter()
        async with session.get(f"{base}/v1/calls/bench-{number % 100}") as response:
            await response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            errors.append(response.status)


async def load(base: str, connections: int, seconds: float, pid: int) -> str:
    latencies: list[float] = []
    errors: list[int] = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm_until = time.monotonic() + 2.0
        await asyncio.gather(*(worker(session, base, warm_until, [], []) for _ in range(10)))
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *(worker(session, base, until, latencies, errors) for _ in range(connections))
        )
        elapsed = time.monotonic() - started
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / max(len(latencies), 1)
    return (
        f"| {connections} connections, {seconds:.0f} s | {len(latencies)} "
        f"| {len(latencies) / elapsed:.0f} | {len(errors)} "
        f"| {percentile(latencies, 0.5):.2f} / {percentile(latencies, 0.99):.2f} | {cpu_ms:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: {' '.join(sys.argv)}\n")
    print("| run | requests | requests/s | errors | p50 / p99 ms | gateway CPU ms/request |")
    print("|---|---|---|---|---|---|")
    with stub_dm() as dm_url, gateway(dm_url) as (ws_base, pid):
        base = ws_base.replace("ws://", "http://")
        for connections in (1, args.connections):
            print(asyncio.run(load(base, connections, args.seconds, pid)), flush=True)


if __name__ == "__main__":
    main()
