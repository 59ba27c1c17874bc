"""End to end: callers from the dialog corpus, through the gateway's WebSocket, on the real
embedded model; what a caller hears and when.

    .venv/bin/python -m bench.calls                          # N = 1 2 4 8 16, booking
    .venv/bin/python -m bench.calls --callers 1 --flow interview_python_dev --reply-mode generate
    .venv/bin/python -m bench.calls --rules off --callers 1 4   # every turn through the LLM
    .venv/bin/python -m bench.calls --no-partials            # no user.partial before a final

Redis, llm-local (embedded SmolLM2), dm and the gateway run as processes on loopback; this
process is N pipelines, each a `websockets` client playing corpus dialogs one after
another for `--seconds`. A caller speaks like a person on a phone: a line takes
`--word-ms` per word to say, and as each word is said the words so far go out as
`user.partial` (ASR's interim text; the gateway forwards at most one per 250 ms); then
the `user.final`. It waits for the turn to end, then pauses `--think-s` (the reply is
spoken, the caller thinks) before the next line.

Per turn, from sending `user.final`: first words (the first `reply.delta`), the turn's
end (`turn.done`); per run: fallbacks, the share of turns decided by rules, and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.dialogs.corpus import CORPUS_TODAY, Dialog, load_corpus
from bench.dialogs.play import max_turns
from bench.processes import dm, gateway, llm_local, machine, percentile, redis

RECV_TIMEOUT_S = 30.0


@dataclass
class Results:
    first_words_ms: list[float] = field(default_factory=list)
    done_ms: list[float] = field(default_factory=list)
    turns: int = 0
    rules: int = 0
    fallbacks: int = 0
    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def row(self, title: str) -> str:
        def ms(values: list[float], share: float) -> str:
            return f"{percentile(values, share):.0f}" if values else "-"

        rules = f"{100 * self.rules / self.turns:.0f} %" if self.turns else "-"
        errors = ", ".join(f"{k} {v}" for k, v in self.errors.items()) or "0"
        cells = [
            title,
            str(self.calls),
            str(self.turns),
            ms(self.first_words_ms, 0.5),
            ms(self.first_words_ms, 0.95),
            ms(self.done_ms, 0.5),
            ms(self.done_ms, 0.95),
            str(self.fallbacks),
            rules,
            errors,
        ]
        return "| " + " | ".join(cells) + " |"


HEADER = (
    "| callers | calls | turns | first words p50 ms | first words p95 ms | turn.done p50 ms "
    "| turn.done p95 ms | fallbacks | decided by rules | errors |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


class Caller:
    """One pipeline: plays dialogs on its own socket, one call after another."""

    def __init__(self, url: str, args: argparse.Namespace, results: Results) -> None:
        self.url = url
        self.args = args
        self.results = results

    async def play(self, dialog: Dialog, call_id: str) -> None:
        async with connect(
            f"{self.url}/v1/calls/{call_id}/ws", compression=None, open_timeout=10
        ) as ws:
            await _send(ws, "call.start", flow=dialog.flow, lang=dialog.lang)
            started = await _recv(ws)
            if started["type"] != "call.started":
                self.results.errors[f"start:{started.get('code')}"] += 1
                return
            node = started["node"]
            asked: Counter[str] = Counter()
            first_line = next(iter(dialog.caller.values()))[0]
            for number in range(1, max_turns(dialog) + 1):
                lines = dialog.caller.get(node)
                text = lines[min(asked[node], len(lines) - 1)] if lines else first_line
                asked[node] += 1
                done = await self._turn(ws, f"t{number}", text)
                if done is None or done.get("done"):
                    break
                node = done["next_node"]
                await asyncio.sleep(self.args.think_s * random.uniform(0.8, 1.2))
            self.results.calls += 1

    async def _turn(self, ws: ClientConnection, turn_id: str, text: str) -> dict[str, Any] | None:
        words = text.split()
        for said in range(1, len(words) + 1):
            # The caller is saying the line; ASR hands over the words so far as they come.
            await asyncio.sleep(self.args.word_ms / 1000)
            if self.args.partials and said < len(words):
                await _send(ws, "user.partial", text=" ".join(words[:said]))
        sent = time.perf_counter()
        await _send(ws, "user.final", turn_id=turn_id, text=text)
        first_words = None
        while True:
            message = await _recv(ws)
            kind = message["type"]
            if kind == "reply.delta" and first_words is None:
                first_words = time.perf_counter()
                self.results.first_words_ms.append((first_words - sent) * 1000)
            elif kind == "turn.done":
                self.results.done_ms.append((time.perf_counter() - sent) * 1000)
                self.results.turns += 1
                self.results.rules += message.get("understood_by") == "rules"
                self.results.fallbacks += bool(message.get("fallback"))
                return message
            elif kind == "error":
                self.results.errors[str(message.get("code"))] += 1
                return None


async def _send(ws: ClientConnection, kind: str, **fields: Any) -> None:
    await ws.send(orjson.dumps({"type": kind, **fields}).decode())


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(RECV_TIMEOUT_S):
        message: dict[str, Any] = orjson.loads(await ws.recv())
    return message


async def run(url: str, dialogs: list[Dialog], callers: int, args: argparse.Namespace) -> Results:
    results = Results()
    until = time.monotonic() + args.seconds
    numbers = itertools.count()
    order = itertools.cycle(random.Random(7).sample(dialogs, len(dialogs)))

    async def pipeline(caller: Caller) -> None:
        await asyncio.sleep(random.uniform(0, args.think_s))  # callers do not start together
        while time.monotonic() < until:
            dialog = next(order)
            try:
                await caller.play(dialog, f"bench-{time.time_ns():x}-{next(numbers)}")
            except (TimeoutError, OSError) as exc:
                results.errors[type(exc).__name__] += 1

    await asyncio.gather(*(pipeline(Caller(url, args, results)) for _ in range(callers)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--flow", default="booking_mri")
    parser.add_argument("--rules", choices=["on", "off"], default="on")
    parser.add_argument("--reply-mode", default="", help="DM_REPLY_MODE, e.g. generate")
    parser.add_argument("--seconds", type=float, default=90.0, help="per level")
    parser.add_argument("--think-s", type=float, default=1.0)
    parser.add_argument(
        "--word-ms", type=float, default=350.0, help="speaking time per word (~170 words/min)"
    )
    parser.add_argument("--no-partials", dest="partials", action="store_false")
    args = parser.parse_args()
    dialogs = load_corpus(flow=args.flow)
    print(f"machine: {machine()}")
    print(
        f"{args.flow}, {len(dialogs)} corpus dialogs, rules {args.rules}, "
        f"replies {args.reply_mode or 'as the flow says'}, "
        f"partials {'on' if args.partials else 'off'}, {args.word_ms:.0f} ms a word, "
        f"think {args.think_s} s, "
        f"{args.seconds:.0f} s per level"
    )
    env = {"DM_TODAY": CORPUS_TODAY.isoformat(), "DM_RULES": args.rules}
    if args.reply_mode:
        env["DM_REPLY_MODE"] = args.reply_mode
    with (
        redis() as redis_url,
        llm_local() as llm_url,
        dm(redis_url, llm_url, **env) as dm_url,
        gateway(dm_url) as (url, _),
    ):
        print(HEADER)
        for callers in args.callers:
            results = asyncio.run(run(url, dialogs, callers, args))
            print(results.row(str(callers)), flush=True)


if __name__ == "__main__":
    main()
