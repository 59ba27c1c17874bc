"""dm-added latency per turn under paced load, saturated turns/s, and the SLA under a stall.

    .venv/bin/python -m bench.dm.turn_latency [--duration 20] [--calls 1 50 200]

Redis, an instant LLM (voicectl.scripted_llm) and dm run as separate processes. The paced client
keeps one HTTP/1.1 connection per call and sends a turn about once a second, as
a caller would; it is a few lines of asyncio over raw sockets so that it costs
little CPU. dm-added latency is what dm reports (total_ms - llm_ms); the client's
own view is printed beside it. Saturation uses the same client, back to back on 50
connections (each on calls of its own, so a call never has two turns in flight): it costs
~0.1 ms of CPU per turn, a few per cent of dm's, and needs nothing installed beyond the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from bench.processes import dm, floor_app, instant_llm, machine, percentile, redis

WARMUP_S = 2.0


class ConnectionClosed(Exception):
    pass


class Connection:
    """A minimal HTTP/1.1 keep-alive client: POST JSON, read a Content-Length body."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def post(self, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        try:
            return await self._post(path, body)
        except ConnectionClosed:
            # The server closed the idle keep-alive connection (uvicorn: after 5 s).
            await self.close()
            await self.open()
            return await self._post(path, body)

    async def _post(self, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        assert self.reader is not None
        assert self.writer is not None
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionClosed
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return status, json.loads(payload)


# One Russian booking, a line per step; a caller that finishes starts a new call.
BOOKING = [
    "Меня зовут Мария Иванова",
    "+7 916 123-45-67",
    "МРТ колена",
    "завтра",
    "в три часа дня",
    "да, всё верно",
]


@dataclass
class Samples:
    added_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    dm_total_ms: list[float] = field(default_factory=list)
    errors: int = 0
    turns: int = 0
    by_rules: int = 0


class BookingCaller:
    """Books over and over on one connection: a new call when the last one ended."""

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        self.calls = 0
        self.call_id: str | None = None
        self.step = 0

    async def turn(self) -> tuple[int, dict[str, object], float]:
        """One caller line; returns the status, the TurnResult and the client's ms."""
        if self.call_id is None:
            self.calls += 1
            self.call_id, self.step = f"{self.name}-{self.calls}", 0
            body: dict[str, object] = {"flow": "booking_mri", "lang": "ru", "call_id": self.call_id}
            status, _ = await self.conn.post("/v1/calls", body)
            if status != 201:
                self.call_id = None
                return status, {}, 0.0
        self.step += 1
        text = BOOKING[(self.step - 1) % len(BOOKING)]
        started = time.perf_counter()
        status, result = await self.conn.post(
            f"/v1/calls/{self.call_id}/turns", {"turn_id": f"t{self.step}", "text": text}
        )
        client_ms = (time.perf_counter() - started) * 1000
        if status != 200 or result.get("done"):
            self.call_id = None
        return status, result, client_ms


async def paced_call(
    url: str, name: str, interval_s: float, until: float, record_after: float, out: Samples
) -> None:
    conn = Connection(url)
    await conn.open()
    caller = BookingCaller(conn, name)
    try:
        await asyncio.sleep(random.uniform(0, interval_s))
        while time.monotonic() < until:
            status, result, client_ms = await caller.turn()
            if time.monotonic() >= record_after:
                out.turns += 1
                if status != 200:
                    out.errors += 1
                else:
                    timings = result["timings"]
                    assert isinstance(timings, dict)
                    out.added_ms.append(timings["total_ms"] - timings["llm_ms"])
                    out.dm_total_ms.append(timings["total_ms"])
                    out.client_ms.append(client_ms)
                    out.by_rules += result["understood_by"] == "rules"
            await asyncio.sleep(max(0.0, interval_s * random.uniform(0.9, 1.1) - client_ms / 1000))
    finally:
        await conn.close()


async def paced(url: str, calls: int, duration_s: float, interval_s: float = 1.0) -> Samples:
    out = Samples()
    now = time.monotonic()
    await asyncio.gather(
        *(
            paced_call(url, f"paced-{calls}-{n}", interval_s, now + duration_s, now + WARMUP_S, out)
            for n in range(calls)
        )
    )
    return out


def saturate(url: str, connections: int, seconds: float) -> str:
    """Turns back to back on `connections` connections; returns a one-line summary."""
    return asyncio.run(_saturate(url, connections, seconds))


async def _saturate(url: str, connections: int, seconds: float) -> str:
    latencies: list[float] = []
    failed = [0]

    async def connection(number: int, until: float) -> None:
        conn = Connection(url)
        await conn.open()
        caller = BookingCaller(conn, f"sat-{number}")
        while time.monotonic() < until:
            status, _, client_ms = await caller.turn()
            latencies.append(client_ms)
            failed[0] += status != 200
        await conn.close()

    until = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*(connection(n, until) for n in range(connections)))
    elapsed = time.monotonic() - started
    return (
        f"turns/s {len(latencies) / elapsed:.0f}, non-2xx {failed[0]}, "
        f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms"
    )


def report(title: str, samples: Samples) -> str:
    cells = [
        f"{percentile(values, share):.2f}"
        for values in (samples.added_ms, samples.client_ms)
        for share in (0.5, 0.99)
    ]
    rules = f"{100 * samples.by_rules / max(1, samples.turns):.0f} %"
    return f"| {title} | {samples.turns} | {samples.errors} | {rules} | {' | '.join(cells)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per paced run")
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--saturate-seconds", type=float, default=10.0)
    parser.add_argument("--stall-calls", type=int, default=50)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with redis() as redis_url, instant_llm() as llm_url, dm(redis_url, llm_url) as url:
        print(
            "\n| paced load | turns | errors | by rules | dm-added p50 ms | dm-added p99 ms "
            "| client p50 ms | client p99 ms |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for calls in args.calls:
            samples = asyncio.run(paced(url, calls, args.duration))
            print(report(f"{calls} calls, 1 turn/s each", samples), flush=True)
        print("\nsaturated dm (50 connections, each on its own calls):")
        print(saturate(url, 50, args.saturate_seconds))
    with redis() as redis_url, floor_app(redis_url) as url:
        print("saturated floor, FastAPI + two Lua round trips (bench/dm/floor_app.py):")
        print(saturate(url, 50, args.saturate_seconds))
    with (
        redis() as redis_url,
        instant_llm(stall_s=60.0) as llm_url,
        # No warm-up: against an LLM that never answers it would hold readiness back.
        # Rules off: every turn waits for the stalling LLM.
        dm(redis_url, llm_url, DM_LLM_WARM_UP="false", DM_RULES="off") as url,
    ):
        samples = asyncio.run(paced(url, args.stall_calls, 16.0, interval_s=6.0))
        deadline_ms = 5000.0
        within = sum(1 for ms in samples.client_ms if ms <= deadline_ms + 50)
        dm_within = sum(1 for ms in samples.dm_total_ms if ms <= deadline_ms + 50)
        print(f"\nstalling LLM, {args.stall_calls} calls, DM_TURN_DEADLINE_S=5.0:")
        print(
            f"turns {samples.turns}, errors {samples.errors}, answered within deadline+50 ms: "
            f"client-observed {within}/{len(samples.client_ms)}, dm-reported "
            f"{dm_within}/{len(samples.dm_total_ms)}; client max "
            f"{max(samples.client_ms, default=float('nan')):.1f} ms"
        )


if __name__ == "__main__":
    main()
