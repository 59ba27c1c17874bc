"""The floor a dm turn is measured against: FastAPI, a validated body and two Lua round
trips (mark in flight; compare-and-set with TTLs), no LLM and no dialog logic.

    REDIS_URL=... uvicorn bench.dm.floor_app:app
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel
from redis.asyncio import Redis

app = FastAPI()
redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
begin = redis.register_script(
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', 7000) return redis.call('GET', KEYS[2])"
)
commit = redis.register_script(
    "redis.call('SET', KEYS[2], ARGV[1], 'EX', 86400) redis.call('DEL', KEYS[1]) return 1"
)


class Turn(BaseModel):
    turn_id: str
    text: str


@app.post("/v1/calls", status_code=201)
async def create_call() -> dict[str, str]:
    """The load client creates its calls first; the floor keeps no call state."""
    return {}


@app.post("/v1/calls/{call_id}/turns")
async def turn(call_id: str, body: Turn) -> dict[str, str]:
    keys = [f"floor:{{{call_id}}}:lock", f"floor:{{{call_id}}}:state"]
    await begin(keys=keys, args=[body.turn_id])
    await commit(keys=keys, args=[body.text])
    return {"call_id": call_id, "turn_id": body.turn_id, "reply": "ok"}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
