"""Two dm replicas on one Redis: interleaved and duplicated deliveries lose nothing and
apply nothing twice."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx
import yaml

from dm.flows.loader import BUILTIN_DIR
from support.stack import dm_stack
from voicectl.scripted_llm import ScriptedReply

CALLS = 50
TURNS = 20


async def _deliver(client: httpx.AsyncClient, call_id: str, turn_id: str) -> dict[str, Any]:
    """Send a turn until it is answered, as a client retrying on 409 would."""
    body = {"turn_id": turn_id, "text": f"utterance {turn_id}"}
    for _ in range(500):
        response = await client.post(f"/v1/calls/{call_id}/turns", json=body)
        if response.status_code == 200:
            result: dict[str, Any] = response.json()
            return result
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "turn_in_progress"
        assert response.headers["retry-after"]
        await asyncio.sleep(random.uniform(0.002, 0.02))
    raise AssertionError("turn never answered")


def _untimed(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "timings"}


async def _call(clients: list[httpx.AsyncClient], call_id: str) -> list[dict[str, Any]]:
    created = await random.choice(clients).post(
        "/v1/calls", json={"flow": "booking_mri", "lang": "ru", "call_id": call_id}
    )
    assert created.status_code == 201
    results = []
    for number in range(1, TURNS + 1):
        turn_id = f"t{number}"
        deliveries = [
            _deliver(random.choice(clients), call_id, turn_id) for _ in range(random.randint(1, 3))
        ]
        if number < TURNS and random.random() < 0.3:
            # The next turn arrives early, while this one is in flight: it must wait its turn.
            early = asyncio.create_task(
                random.choice(clients).post(
                    f"/v1/calls/{call_id}/turns",
                    json={"turn_id": f"early-{number}", "text": "too early"},
                )
            )
        else:
            early = None
        answers = await asyncio.gather(*deliveries)
        # A replay carries the stored timings (up to the commit); all else is identical.
        assert all(_untimed(answer) == _untimed(answers[0]) for answer in answers)
        results.append(answers[0])
        if early is not None:
            response = await early  # awaited before the next turn, so the client is still open
            if response.status_code == 200:
                results.append(response.json())
            else:
                assert response.status_code == 409
    return results


def patient_flows(folder: Path) -> str:
    """The shipped flows, with the booking flow never handing a call over: every turn here
    says nothing it can use, and the test is about the state, not the dialog."""
    for path in BUILTIN_DIR.glob("*.yaml"):
        flow = yaml.safe_load(path.read_text("utf-8"))
        if flow["id"] == "booking_mri":
            flow["max_reasks"] = TURNS * 2  # the early turns fail too
        (folder / path.name).write_text(yaml.safe_dump(flow, allow_unicode=True), "utf-8")
    return str(folder)


async def test_no_lost_and_no_double_applied_turns(redis_url: str, tmp_path: Path) -> None:
    random.seed(7)
    flows = patient_flows(tmp_path)
    # The LLM path on every turn: each applied turn must ask it exactly once.
    with dm_stack(
        redis_url, replicas=2, dm_turn_deadline_s=5.0, dm_rules="off", dm_flows_dir=flows
    ) as stack:
        stack.llm.default = ScriptedReply(chunk_delay_s=0.001)
        limits = httpx.Limits(max_connections=200)
        async with (
            httpx.AsyncClient(base_url=stack.dm_urls[0], timeout=30, limits=limits) as first,
            httpx.AsyncClient(base_url=stack.dm_urls[1], timeout=30, limits=limits) as second,
        ):
            clients = [first, second]
            call_ids = [f"call-{n}" for n in range(CALLS)]
            per_call = await asyncio.gather(*(_call(clients, cid) for cid in call_ids))
            for call_id, results in zip(call_ids, per_call, strict=True):
                state = (await first.get(f"/v1/calls/{call_id}")).json()
                assert state["turns"] == len(results)
                assert state["state_version"] == len(results)
                versions = sorted(result["state_version"] for result in results)
                assert versions == list(range(1, len(results) + 1))
                assert all(result["fallback"] is False for result in results)
                ordered = [r["turn_id"] for r in sorted(results, key=lambda r: r["state_version"])]
                regular = [t for t in ordered if t.startswith("t")]
                assert regular == [f"t{n}" for n in range(1, TURNS + 1)]
        # Each applied turn asked the LLM exactly once.
        applied = sum(len(results) for results in per_call)
        assert len(stack.llm.requests) == applied
