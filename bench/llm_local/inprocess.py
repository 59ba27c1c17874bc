"""Raw in-process `Llama.create_chat_completion`: the floor without any HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

from llama_cpp import Llama

from bench.llm_local.client import Turn, check
from bench.llm_local.peer_server import patch
from bench.llm_local.workload import MAX_TOKENS, SCHEMA, messages


def load(model_path: str, threads: int, n_ctx: int) -> Llama:
    patch()
    return Llama(model_path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)


def run_turn(llm: Llama, turn: int) -> Turn:
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    finish: str | None = None
    stream = llm.create_chat_completion(
        messages=cast(Any, messages(turn)),
        response_format={"type": "json_object", "schema": SCHEMA},
        max_tokens=MAX_TOKENS,
        temperature=0,
        top_p=1,
        stream=True,
    )
    # stream=True: an iterator of OpenAI-shaped chunk dicts.
    for chunk in cast(Iterator[dict[str, Any]], stream):
        choice = chunk["choices"][0]
        content = choice["delta"].get("content")
        if content:
            first = first if first is not None else time.perf_counter() - started
            parts.append(content)
        finish = choice.get("finish_reason") or finish
    text = "".join(parts)
    return Turn(first, time.perf_counter() - started, len(parts), finish, check(text))
