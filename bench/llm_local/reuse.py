"""Prompt reuse: llm-local vs `python -m llama_cpp.server` on a repeated prompt, and what
`POST /v1/prefill` buys a turn whose caller was still speaking.

    .venv/bin/python -m bench.llm_local.reuse [--threads 2] [--turns 20] [--json out.json]

1. **Repeated prompt, 1 client.** The same dm-style turn (system prompt, caller line,
   schema) over and over, alternating between the two servers (same model, threads,
   context); both are warmed first. The peer keeps its last prompt's KV, llm-local its
   prefix cache: each should decode only the last prompt token.
2. **Prefill.** llm-local alone. Each trial is a new call: a dm-style turn whose step,
   known slots, last exchange and caller words are new to the cache (only the system
   prompt is cached). Cold: the final request alone. Prefilled: `/v1/prefill` with the
   caller's words but the last few, a pause while the caller finishes, then the final
   request. Trials alternate between the two.
3. **A prefill beside a running stream.** One long generation streams; a prefill of a
   new ~340-token prompt arrives mid-stream. The stream's gaps between tokens while the
   background decodes it, against the gaps before, for each background chunk given.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from typing import Any

import httpx

from bench.llm_local.client import Turn, payload, stream_chat, stream_turn
from bench.llm_local.compare import llm_local, peer
from bench.llm_local.workload import SCHEMA, SYSTEM
from bench.processes import machine, percentile
from llm_local.embedded.model_file import resolve_model_path

OURS, PEER = "llm-local", "llama_cpp.server"
SPEAKING_S = 1.5  # from the partial transcript to the final one
TRIALS = 10
NAMES = ["Anna Smith", "John Carter", "Maria Lopez", "Peter Ivanov", "Olga Petrova", "Li Wei"]
EXAMS = ["knee", "head", "spine", "shoulder", "abdomen", "wrist"]


def dm_turn(trial: int, words: str) -> list[dict[str, str]]:
    """A booking turn as dm builds it, with slots and a last exchange new to the cache."""
    name = NAMES[trial % len(NAMES)]
    phone = f"+1 415 555 {1000 + trial * 37:04d}"
    user = "\n".join(
        [
            "Current step: ask_exam: find out which body part the caller wants scanned",
            "next_node choices: ask_exam (stay) | confirm | handoff",
            f"Known: {json.dumps({'name': name, 'phone': phone})}",
            f"Caller: my number is {phone}, and I am {name}",
            f"Agent: Thank you, {name.split()[0]}. Which body part should we scan?",
            f"Caller's latest message: {json.dumps(words)}",
        ]
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def caller_words(trial: int) -> str:
    exam = EXAMS[trial % len(EXAMS)]
    return f"I think it should be my {exam}, it has been hurting since last {trial + 2} weeks"


def chat_body(messages: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "messages": messages,
        "max_tokens": 24,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "turn", "schema": SCHEMA, "strict": True},
        },
    }


def summary(turns: list[Turn]) -> dict[str, Any]:
    ttfts = [t.ttft_s * 1000 for t in turns if t.ttft_s is not None]
    busy_s = sum(t.latency_s for t in turns)
    cached = [t.cached_tokens for t in turns if t.cached_tokens is not None]
    return {
        "turns": len(turns),
        "ttft_p50_ms": percentile(ttfts, 0.5),
        "ttft_p95_ms": percentile(ttfts, 0.95),
        "turn_p50_s": percentile([t.latency_s for t in turns], 0.5),
        "tokens_per_s": sum(t.tokens for t in turns) / busy_s if busy_s else 0.0,
        "valid_share": sum(t.valid for t in turns) / max(len(turns), 1),
        "cached_tokens_p50": percentile([float(c) for c in cached], 0.5) if cached else None,
        "errors": [t.error for t in turns if t.error],
    }


async def repeated(ours: str, theirs: str, turns: int) -> dict[str, dict[str, Any]]:
    results: dict[str, list[Turn]] = {OURS: [], PEER: []}
    async with httpx.AsyncClient(timeout=600) as http:
        for url, is_peer in ((ours, False), (theirs, True)):
            for _ in range(2):
                await stream_turn(http, url, 0, peer=is_peer)
        for _ in range(turns):
            results[OURS].append(await stream_turn(http, ours, 0, peer=False))
            results[PEER].append(await stream_turn(http, theirs, 0, peer=True))
    return {name: summary(done) for name, done in results.items()}


async def prefill_effect(url: str) -> dict[str, dict[str, Any]]:
    results: dict[str, list[Turn]] = {"cold": [], "prefilled": []}
    answers: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=600) as http:
        await stream_chat(http, url, payload(0, peer=False), SCHEMA)  # system prompt, grammar
        for trial in range(2 * TRIALS):
            words = caller_words(trial)
            final = chat_body(dm_turn(trial, words))
            await asyncio.sleep(SPEAKING_S)  # both ways, the engine starts from idle
            if trial % 2:
                partial = dm_turn(trial, words.rsplit(" ", 3)[0])
                answer = await http.post(f"{url}/v1/prefill", json={"messages": partial})
                answers.append(answer.json())
                await asyncio.sleep(SPEAKING_S)
                results["prefilled"].append(await stream_chat(http, url, final, SCHEMA))
            else:
                results["cold"].append(await stream_chat(http, url, final, SCHEMA))
    out = {name: summary(done) for name, done in results.items()}
    out["prefilled"]["prefill_answers"] = answers[:3]
    return out


async def prefill_beside_a_stream(url: str) -> dict[str, Any]:
    gaps_before: list[float] = []
    gaps_during: list[float] = []
    async with httpx.AsyncClient(timeout=600) as http:
        engine = (await http.get(f"{url}/config")).json()["engine"]
        chunk = engine["prefill_background_chunk"]
        for trial in range(3):
            story = f"Write a long story, with many details, about dragon number {trial}."
            body = {
                "messages": [{"role": "user", "content": story}],
                "max_tokens": 200,
                "temperature": 0,
                "stream": True,
            }
            briefing = f"Briefing {trial}: " + "Details about the clinic's rules. " * 45
            long_prompt = [
                {"role": "system", "content": briefing},
                {"role": "user", "content": "And the caller says"},
            ]
            stamps: list[float] = []
            prefill: asyncio.Task[httpx.Response] | None = None
            sent_at = 0.0
            async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: {") and '"content":"' in line:
                        stamps.append(time.perf_counter())
                    if len(stamps) == 30 and prefill is None:
                        sent_at = time.perf_counter()
                        prefill = asyncio.create_task(
                            http.post(f"{url}/v1/prefill", json={"messages": long_prompt})
                        )
            if prefill is None:
                continue  # the story ended early
            answer = (await prefill).json()
            # Steps carrying background tokens (with chunk 0, as many as with 1).
            steps = -(-answer["prefilled_tokens"] // max(chunk, 1))
            gaps = [b - a for a, b in itertools.pairwise(stamps)]
            start = next(i for i, stamp in enumerate(stamps) if stamp >= sent_at)
            gaps_before += gaps[5 : start - 1]
            gaps_during += gaps[start : start + steps]
    return {
        "background_chunk": chunk,
        "gap_before_p50_ms": percentile(gaps_before, 0.5) * 1000,
        "gap_before_p95_ms": percentile(gaps_before, 0.95) * 1000,
        "gap_during_p50_ms": percentile(gaps_during, 0.5) * 1000,
        "gap_during_p95_ms": percentile(gaps_during, 0.95) * 1000,
        "gaps_during": len(gaps_during),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument(
        "--background-chunk",
        type=int,
        nargs="+",
        default=[1, 4],
        help="LLM_PREFILL_BACKGROUND_CHUNK values for part 3",
    )
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    model = str(resolve_model_path(os.environ.get("LLM_MODEL_PATH", "")))
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    with llm_local(args.threads) as ours_url, peer(model, args.threads) as peer_url:
        results["repeated"] = asyncio.run(repeated(ours_url, peer_url, args.turns))
        print("repeated:", json.dumps(results["repeated"]), flush=True)
    with llm_local(args.threads) as ours_url:
        results["prefill"] = asyncio.run(prefill_effect(ours_url))
        print("prefill:", json.dumps(results["prefill"]), flush=True)
    results["beside"] = []
    for chunk in args.background_chunk:
        with llm_local(args.threads, LLM_PREFILL_BACKGROUND_CHUNK=str(chunk)) as ours_url:
            results["beside"].append(asyncio.run(prefill_beside_a_stream(ours_url)))
            print("beside:", json.dumps(results["beside"][-1]), flush=True)
    print(f"\n{machine()}, {args.threads} threads, 1-min load before the run {load_before:.2f}\n")
    print(tables(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=1)


def tables(results: dict[str, Any]) -> str:
    rows = [
        "| repeated prompt, 1 client | turns | TTFT p50 | TTFT p95 | turn p50 | tokens/s | valid |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["repeated"].items():
        rows.append(
            f"| {name} | {r['turns']} | {r['ttft_p50_ms']:.0f} ms | {r['ttft_p95_ms']:.0f} ms "
            f"| {r['turn_p50_s']:.2f} s | {r['tokens_per_s']:.1f} | {r['valid_share']:.0%} |"
        )
    ours, theirs = results["repeated"][OURS], results["repeated"][PEER]
    rows.append(
        f"\nTTFT p50 ratio llm-local / peer: {ours['ttft_p50_ms'] / theirs['ttft_p50_ms']:.2f}\n"
    )
    rows += [
        "| prefill (llm-local) | turns | TTFT p50 | TTFT p95 | cached tokens p50 |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["prefill"].items():
        rows.append(
            f"| {name} | {r['turns']} | {r['ttft_p50_ms']:.0f} ms | {r['ttft_p95_ms']:.0f} ms "
            f"| {r['cached_tokens_p50']} |"
        )
    rows += [
        "",
        "| prefill beside a stream | stream's token gaps p50 / p95 before "
        "| while the background decodes | gaps |",
        "|---|---|---|---|",
    ]
    for beside in results["beside"]:
        rows.append(
            f"| background chunk {beside['background_chunk']} "
            f"| {beside['gap_before_p50_ms']:.0f} / {beside['gap_before_p95_ms']:.0f} ms "
            f"| {beside['gap_during_p50_ms']:.0f} / {beside['gap_during_p95_ms']:.0f} ms "
            f"| {beside['gaps_during']} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
