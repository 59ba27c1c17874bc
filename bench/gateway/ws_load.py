"""WebSocket calls through gateway → dm: latencies under paced load, and saturation.

    .venv/bin/python -m bench.gateway.ws_load [--calls 100] [--turns 10] [--runs stack alone model]

Redis, the LLM, dm and the gateway run as separate processes on loopback; this
process is the pipeline side, one `websockets` client per call. Each call sends
`call.start`, then a `user.final` about once a second (paced, as callers do),
answers each reply with `playback.done`, and ends with `call.end`. Per turn it
measures, from sending `user.final`: the backchannel, the first `reply.delta`
and `turn.done`; "added" is the turn as the client saw it minus the LLM time dm
reports (`timings.llm_ms`), so it holds the gateway, dm, Redis and both hops.

Runs (`--runs` picks some): `stack`, paced calls on an instant LLM
(bench/instant_llm.py), then the same stack saturated (calls back to back);
`alone`, one gateway process in front of an instant stub dm
(bench/gateway/stub_dm.py), paced as above, then saturated; `model`, a few
paced calls on llm-local's embedded model, with a 1 s pause after each turn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.processes import (
    child,
    gateway,
    instant_llm,
    llm_local,
    machine,
    percentile,
    redis,
    wait_http,
)
from voicectl.redis_server import free_port

RECV_TIMEOUT_S = 30.0
# A booking without the final "yes": the call fills its slots, then stays at the
# read-back (re-asking), so a call takes any number of turns without ending.
CALLER_LINES = [
    "Меня зовут Мария",
    "Восемь девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь",
    "МРТ колена",
    "Завтра",
    "В три часа дня",
]


@dataclass
class Results:
    backchannel_ms: list[float] = field(default_factory=list)
    first_delta_ms: list[float] = field(default_factory=list)
    turn_ms: list[float] = field(default_factory=list)
    added_ms: list[float] = field(default_factory=list)  # turn_ms minus dm's llm_ms
    hop_ms: list[float] = field(default_factory=list)  # turn_ms minus dm's total_ms
    llm_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    turns: int = 0
    seconds: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per process, for the whole run

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Pacing:
    interval_s: float = 0.0  # a turn every interval (0: back to back)
    think_s: float = 0.0  # or a pause after each turn's end


class CallRun:
    """One call of the load: the client side of one socket."""

    def __init__(self, ws: ClientConnection, call_id: str, results: Results) -> None:
        self.ws = ws
        self.call_id = call_id
        self.results = results

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(orjson.dumps({"type": kind, **fields}).decode())

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(RECV_TIMEOUT_S):
            message: dict[str, Any] = orjson.loads(await self.ws.recv())
        return message

    async def start(self, flow: str, lang: str) -> bool:
        await self.send("call.start", flow=flow, lang=lang)
        started = await self.recv()
        if started["type"] != "call.started":
            self.results.errors[f"call.start:{started.get('code')}"] += 1
            return False
        return True

    async def turn(self, number: int) -> None:
        turn_id = f"t{number}"
        text = CALLER_LINES[(number - 1) % len(CALLER_LINES)]
        sent = time.perf_counter()
        await self.send("user.final", turn_id=turn_id, text=text)
        backchannel = first_delta = None
        while True:
            message = await self.recv()
            now = time.perf_counter()
            kind = message["type"]
            if kind == "backchannel":
                backchannel = now
            elif kind == "reply.delta" and first_delta is None:
                first_delta = now
            elif kind == "turn.done":
                self._record(message, sent, now, backchannel, first_delta)
                break
            elif kind == "error":
                self.results.errors[str(message.get("code"))] += 1
                return
            elif kind != "reply.delta":
                self.results.errors[f"unexpected:{kind}"] += 1
                return
        await self.send("playback.done", turn_id=turn_id)

    def _record(
        self,
        done: dict[str, Any],
        sent: float,
        now: float,
        backchannel: float | None,
        first_delta: float | None,
    ) -> None:
        r = self.results
        r.turns += 1
        if backchannel is None or first_delta is None:
            r.errors["missing_backchannel_or_delta"] += 1
            return
        turn_ms = (now - sent) * 1000
        timings = done["timings"]
        r.backchannel_ms.append((backchannel - sent) * 1000)
        r.first_delta_ms.append((first_delta - sent) * 1000)
        r.turn_ms.append(turn_ms)
        r.llm_ms.append(timings["llm_ms"])
        r.added_ms.append(turn_ms - timings["llm_ms"])
        r.hop_ms.append(turn_ms - timings["total_ms"])
        r.fallbacks += bool(done["fallback"])

    async def end(self) -> None:
        await self.send("call.end")
        while (await self.recv())["type"] != "call.ended":
            pass


async def one_call(
    ws_base: str,
    call_id: str,
    results: Results,
    pacing: Pacing,
    *,
    turns: int | None,
    until: float | None,
) -> None:
    """Run one call: a number of turns, or turns until `until` (monotonic)."""
    try:
        async with connect(
            f"{ws_base}/v1/calls/{call_id}/ws",
            compression=None,
            open_timeout=RECV_TIMEOUT_S,
            max_size=2**20,
        ) as ws:
            call = CallRun(ws, call_id, results)
            if not await call.start("booking_mri", "ru"):
                return
            if pacing.interval_s:
                await asyncio.sleep(random.uniform(0, pacing.interval_s))  # spread the calls
            next_turn = time.monotonic()
            number = 0
            while (turns is None or number < turns) and (until is None or time.monotonic() < until):
                number += 1
                await call.turn(number)
                if pacing.interval_s:
                    next_turn += pacing.interval_s
                    await asyncio.sleep(max(0.0, next_turn - time.monotonic()))
                elif pacing.think_s:
                    await asyncio.sleep(pacing.think_s)
            await call.end()
    except (ConnectionClosed, WebSocketException, OSError, TimeoutError) as exc:
        results.errors[type(exc).__name__] += 1


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    ws_base: str,
    calls: int,
    pacing: Pacing,
    *,
    turns: int | None = None,
    seconds: float | None = None,
    processes: dict[str, int] | None = None,
    tag: str = "",
) -> Results:
    results = Results()
    processes = {**(processes or {}), "client": os.getpid()}
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    started = time.monotonic()
    until = started + seconds if seconds is not None else None
    await asyncio.gather(
        *(
            one_call(ws_base, f"{tag}call-{n}", results, pacing, turns=turns, until=until)
            for n in range(calls)
        )
    )
    results.seconds = time.monotonic() - started
    for name, pid in processes.items():
        results.cpu_ms[name] = (cpu_seconds(pid) - cpu_before[name]) * 1000
    return results


@contextmanager
def dm_service(redis_url: str, llm_url: str) -> Iterator[tuple[str, int]]:
    """`python -m dm`; yields its URL and its pid."""
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "LLM_BASE_URL": llm_url,
        "DM_PORT": str(port),
        "LOG_LEVEL": "warning",
    }
    with child([sys.executable, "-m", "dm"], env) as process:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=120)
        yield f"http://127.0.0.1:{port}", process.pid


@contextmanager
def stub_dm() -> Iterator[str]:
    port = free_port()
    with child([sys.executable, "-m", "bench.gateway.stub_dm", str(port)]):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"


def row(title: str, r: Results) -> str:
    def p(values: list[float], share: float) -> str:
        return f"{percentile(values, share):.1f}"

    errors = sum(r.errors.values())
    detail = f" ({dict(r.errors)})" if errors else ""
    cpu = " / ".join(f"{r.cpu_ms[name] / max(r.turns, 1):.2f}" for name in sorted(r.cpu_ms))
    return (
        f"| {title} | {r.turns} | {r.turns_per_s:.1f} | {errors}{detail} | {r.fallbacks} "
        f"| {p(r.backchannel_ms, 0.5)} / {p(r.backchannel_ms, 0.99)} "
        f"| {p(r.first_delta_ms, 0.5)} / {p(r.first_delta_ms, 0.99)} "
        f"| {p(r.turn_ms, 0.5)} / {p(r.turn_ms, 0.99)} "
        f"| {p(r.llm_ms, 0.5)} / {p(r.llm_ms, 0.99)} "
        f"| {p(r.added_ms, 0.5)} / {p(r.added_ms, 0.99)} "
        f"| {p(r.hop_ms, 0.5)} / {p(r.hop_ms, 0.99)} | {cpu} |"
    )


HEADER = (
    "| run | turns | turns/s | errors | fallbacks | backchannel p50/p99 ms "
    "| first delta p50/p99 ms | turn p50/p99 ms | llm p50/p99 ms "
    "| added p50/p99 ms | gateway hop p50/p99 ms | CPU ms/turn ({cpu}) |\n" + "|---" * 12 + "|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="concurrent paced calls")
    parser.add_argument("--turns", type=int, default=10, help="turns per paced call")
    parser.add_argument("--saturate-calls", type=int, default=50)
    parser.add_argument("--saturate-seconds", type=float, default=10.0)
    runs = ["stack", "alone", "model"]
    parser.add_argument("--runs", nargs="+", choices=runs, default=runs)
    parser.add_argument("--model-calls", type=int, default=4)
    parser.add_argument("--model-turns", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: {' '.join(sys.argv)}\n")

    if "stack" in args.runs:
        run_stack(args)
    if "alone" in args.runs:
        run_alone(args)
    if "model" in args.runs:
        run_model(args)


def warm_up_then_pace(
    ws_base: str, args: argparse.Namespace, processes: dict[str, int], tag: str
) -> None:
    """A short warm-up, then the paced run (`args.calls` calls, a turn a second); prints its row."""
    asyncio.run(load(ws_base, 10, Pacing(interval_s=0.2), turns=5, tag="warmup-"))
    paced = asyncio.run(
        load(
            ws_base,
            args.calls,
            Pacing(interval_s=1.0),
            turns=args.turns,
            processes=processes,
            tag=tag,
        )
    )
    print(row(f"{args.calls} calls x {args.turns} turns, 1 turn/s each", paced), flush=True)


def run_stack(args: argparse.Namespace) -> None:
    with (
        redis() as redis_url,
        instant_llm() as llm_url,
        dm_service(redis_url, llm_url) as (dm_url, dm_pid),
        gateway(dm_url) as (ws_base, gateway_pid),
    ):
        processes = {"dm": dm_pid, "gateway": gateway_pid}
        print("instant scripted LLM; gateway, dm, Redis, LLM as separate processes")
        print(HEADER.format(cpu=" / ".join(sorted([*processes, "client"]))))
        warm_up_then_pace(ws_base, args, processes, tag="paced-")
        saturated = asyncio.run(
            load(
                ws_base,
                args.saturate_calls,
                Pacing(),
                seconds=args.saturate_seconds,
                processes=processes,
                tag="saturated-",
            )
        )
        print(row(f"{args.saturate_calls} calls back to back (saturated)", saturated), flush=True)


def run_alone(args: argparse.Namespace) -> None:
    with stub_dm() as dm_url, gateway(dm_url) as (ws_base, gateway_pid):
        processes = {"gateway": gateway_pid}
        print("\none gateway process alone, in front of an instant stub dm")
        print(HEADER.format(cpu="client / gateway"))
        warm_up_then_pace(ws_base, args, processes, tag="alone-paced-")
        for calls in (1, args.saturate_calls):
            alone = asyncio.run(
                load(
                    ws_base,
                    calls,
                    Pacing(),
                    seconds=args.saturate_seconds,
                    processes=processes,
                    tag=f"alone-{calls}-",
                )
            )
            print(row(f"{calls} calls back to back", alone), flush=True)


def run_model(args: argparse.Namespace) -> None:
    with (
        redis() as redis_url,
        llm_local() as llm_url,
        dm_service(redis_url, llm_url) as (dm_url, dm_pid),
        gateway(dm_url) as (ws_base, gateway_pid),
    ):
        processes = {"dm": dm_pid, "gateway": gateway_pid}
        print("\nllm-local, embedded model (SmolLM2-135M), 1 s pause after each turn")
        print(HEADER.format(cpu=" / ".join(sorted([*processes, "client"]))))
        model = asyncio.run(
            load(
                ws_base,
                args.model_calls,
                Pacing(think_s=1.0),
                turns=args.model_turns,
                processes=processes,
                tag="model-",
            )
        )
        print(row(f"{args.model_calls} calls x {args.model_turns} turns", model), flush=True)


if __name__ == "__main__":
    main()
