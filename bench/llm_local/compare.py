"""llm-local vs `python -m llama_cpp.server` vs raw in-process `Llama`, one dm-style turn.

    .venv/bin/python -m bench.llm_local.compare [--threads 2] [--levels 1 4 8] [--json out.json]

Both servers run as processes on loopback with the same model, threads and context;
each level runs N streaming clients back to back against one server, then the
other, so slow drift of the shared machine's load hits both alike. The peer runs
with `--interrupt_requests False`: by default a new request cuts off the stream
in progress, which no client can use. Raw in-process calls run one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from bench.llm_local.client import Turn, stream_turn
from bench.processes import child, machine, percentile, wait_http
from llm_local.embedded.model_file import resolve_model_path
from voicectl.redis_server import free_port

OURS, PEER, RAW = "llm-local", "llama_cpp.server", "in-process Llama"
TURNS_PER_CLIENT = {1: 8, 4: 4, 8: 4}
N_CTX = 4096


@contextmanager
def llm_local(threads: int, **settings: str) -> Iterator[str]:
    port = free_port()
    env = {
        "LLM_BACKEND": "embedded",
        "LLM_PORT": str(port),
        "HOST": "127.0.0.1",
        "LLM_N_THREADS": str(threads),
        "LLM_N_CTX": str(N_CTX),
        "LLM_MAX_SEQUENCES": "8",
        "LOG_LEVEL": "warning",
        **settings,
    }
    with child([sys.executable, "-m", "llm_local"], env):
        wait_http(f"http://127.0.0.1:{port}/health", timeout_s=180)
        yield f"http://127.0.0.1:{port}"


@contextmanager
def peer(model: str, threads: int) -> Iterator[str]:
    port = free_port()
    args = [
        *(sys.executable, "-m", "bench.llm_local.peer_server", "--model", model),
        *("--n_threads", str(threads), "--n_threads_batch", str(threads)),
        *("--n_ctx", str(N_CTX), "--interrupt_requests", "False"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    with child(args):
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout_s=180)
        yield f"http://127.0.0.1:{port}"


async def run_level(
    url: str, clients: int, turns_each: int, *, is_peer: bool
) -> tuple[list[Turn], float]:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=32)) as http:

        async def client(index: int) -> list[Turn]:
            return [
                await stream_turn(http, url, index * turns_each + n, peer=is_peer)
                for n in range(turns_each)
            ]

        started = time.perf_counter()
        per_client = await asyncio.gather(*(client(i) for i in range(clients)))
        return [t for turns in per_client for t in turns], time.perf_counter() - started


def summary(turns: list[Turn], wall_s: float) -> dict[str, Any]:
    ttfts = [t.ttft_s * 1000 for t in turns if t.ttft_s is not None]
    latencies = [t.latency_s for t in turns]
    return {
        "turns": len(turns),
        "ttft_p50_ms": percentile(ttfts, 0.5),
        "ttft_p95_ms": percentile(ttfts, 0.95),
        "turn_p50_s": percentile(latencies, 0.5),
        "turn_p95_s": percentile(latencies, 0.95),
        "tokens_per_s": sum(t.tokens for t in turns) / wall_s,
        "tokens_per_turn": sum(t.tokens for t in turns) / max(len(turns), 1),
        "valid_share": sum(t.valid for t in turns) / max(len(turns), 1),
        "length_cut": sum(t.finish_reason == "length" for t in turns),
        "errors": [t.error for t in turns if t.error],
        "load_1m": os.getloadavg()[0],  # includes the benchmark's own threads
    }


def in_process(model: str, threads: int, turns: int) -> dict[str, Any]:
    from bench.llm_local.inprocess import load, run_turn

    llm = load(model, threads, N_CTX)
    run_turn(llm, 0)  # warm-up: first prompt decoded, grammar built
    started = time.perf_counter()
    results = [run_turn(llm, n) for n in range(turns)]
    out = summary(results, time.perf_counter() - started)
    llm.close()
    return out


def table(results: dict[str, dict[int, dict[str, Any]]]) -> str:
    head = (
        "| target | clients | turns | TTFT p50 | TTFT p95 | turn p50 | turn p95 | tokens/s total "
        "| tokens/turn | valid | load |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for name, levels in results.items():
        for clients, r in levels.items():
            rows.append(
                f"| {name} | {clients} | {r['turns']} | {r['ttft_p50_ms']:.0f} ms "
                f"| {r['ttft_p95_ms']:.0f} ms | {r['turn_p50_s']:.2f} s | {r['turn_p95_s']:.2f} s "
                f"| {r['tokens_per_s']:.1f} | {r['tokens_per_turn']:.0f} "
                f"| {r['valid_share']:.0%} | {r['load_1m']:.1f} |"
            )
    return "\n".join(rows)


def ratios(results: dict[str, dict[int, dict[str, Any]]]) -> str:
    lines = []
    for clients, ours in results[OURS].items():
        theirs = results[PEER].get(clients)
        if theirs:
            speed = ours["tokens_per_s"] / theirs["tokens_per_s"]
            ttft = ours["ttft_p50_ms"] - theirs["ttft_p50_ms"]
            lines.append(
                f"- {clients} client(s): tokens/s ×{speed:.2f}, TTFT p50 {ttft:+.0f} ms vs the peer"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    model = str(resolve_model_path(os.environ.get("LLM_MODEL_PATH", "")))
    load_before = os.getloadavg()[0]
    results: dict[str, dict[int, dict[str, Any]]] = {OURS: {}, PEER: {}}
    with llm_local(args.threads) as ours_url, peer(model, args.threads) as peer_url:
        targets = [(OURS, ours_url, False), (PEER, peer_url, True)]
        for _, url, is_peer in targets:  # warm-up: prompt caches, grammars
            asyncio.run(run_level(url, 1, 2, is_peer=is_peer))
        for clients in args.levels:
            for name, url, is_peer in targets:
                turns, wall = asyncio.run(
                    run_level(url, clients, TURNS_PER_CLIENT.get(clients, 2), is_peer=is_peer)
                )
                results[name][clients] = summary(turns, wall)
                print(f"{name} @ {clients}: {json.dumps(results[name][clients])}", flush=True)
    results[RAW] = {1: in_process(model, args.threads, TURNS_PER_CLIENT[1])}
    print(f"\n{machine()}, {args.threads} threads, 1-min load before the run {load_before:.2f}\n")
    print(table(results))
    print()
    print(ratios(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(
                {k: {str(c): v for c, v in r.items()} for k, r in results.items()}, out, indent=1
            )


if __name__ == "__main__":
    main()
