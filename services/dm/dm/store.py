"""Call state in Redis: create, load, and the two Lua round trips of a turn.

A turn costs two round trips: `begin` (load state, check idempotency, take the
call's turn lock) and `commit` (compare-and-set on the version, store the turn
result for idempotency, release the lock, refresh the TTL of every key). No
read-modify-write ever happens outside a version check.

What a call keeps is bounded: the last `turn_records` turn results (a retry comes
within seconds, not a hundred turns later) and `interrupt_records` barge-ins. Barge-ins
also travel between dm replicas on a pub/sub channel, behind this class too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import orjson
from redis.asyncio import Redis

from dm.keys import INTERRUPT_CHANNEL, interrupts_key, lock_key, order_key, state_key, turns_key
from dm.state import CallState, Interruption

BeginStatus = Literal["ok", "stored", "not_found", "ended", "reused", "in_progress", "busy"]
CommitStatus = Literal["ok", "conflict", "not_found"]

# The owner (a label of the API key that created the call) sits beside the document,
# so every script checks it without decoding JSON.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', 0, 'ended', 0, 'doc', ARGV[1], 'owner', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: state, turns, lock, interrupts. ARGV: turn_id, text digest, lock TTL in ms, owner.
# A call of another owner is not found.
_BEGIN = """
local st = redis.call('HMGET', KEYS[1], 'v', 'ended', 'doc', 'owner')
if not st[1] or (st[4] or '') ~= ARGV[4] then return {'not_found'} end
local rec = redis.call('HMGET', KEYS[2], 'h:' .. ARGV[1], 'r:' .. ARGV[1])
if rec[1] then
  if rec[1] ~= ARGV[2] then return {'reused'} end
  return {'stored', st[1], rec[2]}
end
if st[2] == '1' then return {'ended'} end
local holder = redis.call('GET', KEYS[3])
if holder then
  if holder == ARGV[1] then return {'in_progress'} end
  return {'busy', holder}
end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
return {'ok', st[1], st[3], redis.call('HGETALL', KEYS[4])}
"""

# KEYS: state, turns, lock, order. ARGV: expected version, doc, ended flag, TTL seconds,
# turn_id ('' when the write is not a turn), text digest, result JSON, lock owner to
# release, turn records kept.
_COMMIT = """
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {'not_found'} end
if v ~= ARGV[1] then return {'conflict', v} end
local nv = tonumber(v) + 1
redis.call('HSET', KEYS[1], 'v', nv, 'doc', ARGV[2], 'ended', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], 'h:' .. ARGV[5], ARGV[6], 'r:' .. ARGV[5], ARGV[7])
  redis.call('RPUSH', KEYS[4], ARGV[5])
  while redis.call('LLEN', KEYS[4]) > tonumber(ARGV[9]) do
    local old = redis.call('LPOP', KEYS[4])
    redis.call('HDEL', KEYS[2], 'h:' .. old, 'r:' .. old)
  end
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
if ARGV[8] ~= '' and redis.call('GET', KEYS[3]) == ARGV[8] then
  redis.call('DEL', KEYS[3])
end
return {'ok', nv}
"""

# KEYS: interrupts. ARGV: turn_id, JSON, TTL seconds, records kept. A full hash takes
# no new turn (the call's first barge-ins are kept, and the hash stays small).
_INTERRUPT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
   and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: state, turns, order, interrupts. ARGV: expected version, doc, retention seconds.
# The ended call keeps only its summary: turn records and barge-ins go.
_PURGE = """
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {'not_found'} end
if v ~= ARGV[1] then return {'conflict', v} end
local nv = tonumber(v) + 1
redis.call('HSET', KEYS[1], 'v', nv, 'doc', ARGV[2], 'ended', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return {'ok', nv}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class StoredCall:
    state: CallState
    version: int
    interruptions: dict[str, Interruption]


@dataclass(frozen=True, slots=True)
class BeginResult:
    status: BeginStatus
    call: StoredCall | None = None  # status "ok"
    stored_result: bytes | None = None  # status "stored": the TurnResult JSON
    version: int | None = None


@dataclass(frozen=True, slots=True)
class CommitResult:
    status: CommitStatus
    version: int | None = None


class CallStore:
    def __init__(
        self, redis: Redis, ttl_s: int, *, turn_records: int = 64, interrupt_records: int = 32
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.turn_records = turn_records
        self.interrupt_records = interrupt_records
        self._create = redis.register_script(_CREATE)
        self._begin = redis.register_script(_BEGIN)
        self._commit = redis.register_script(_COMMIT)
        self._release = redis.register_script(_RELEASE)
        self._interrupt = redis.register_script(_INTERRUPT)
        self._purge = redis.register_script(_PURGE)

    async def create(self, state: CallState) -> bool:
        """Store a new call at version 0; False if the call_id is taken."""
        created = await self._create(
            keys=[state_key(state.call_id)], args=[_dump(state), self.ttl_s, state.owner]
        )
        return bool(created)

    async def load(self, call_id: str) -> StoredCall | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(state_key(call_id), ["v", "doc"])
            pipe.hgetall(interrupts_key(call_id))
            (version, doc), interrupts = await pipe.execute()
        if version is None or doc is None:
            return None
        return StoredCall(
            CallState.model_validate_json(doc), int(version), _interruptions(interrupts)
        )

    async def record_interruption(
        self, call_id: str, turn_id: str, interruption: Interruption
    ) -> bool:
        """Note a barge-in; False when the call already holds its share of them."""
        kept = await self._interrupt(
            keys=[interrupts_key(call_id)],
            args=[turn_id, interruption.model_dump_json(), self.ttl_s, self.interrupt_records],
        )
        return bool(kept)

    async def publish_interrupt(self, call_id: str, turn_id: str, heard: str) -> None:
        """Tell every dm replica that the caller barged in on `turn_id`."""
        message = {"call_id": call_id, "turn_id": turn_id, "heard": heard}
        await self.redis.publish(INTERRUPT_CHANNEL, orjson.dumps(message))

    async def interrupts(self) -> AsyncIterator[tuple[str, str, str]]:
        """(call_id, turn_id, heard) of every barge-in published, until cancelled."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(INTERRUPT_CHANNEL)
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    data = orjson.loads(message["data"])
                    yield str(data["call_id"]), str(data["turn_id"]), str(data.get("heard", ""))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
        finally:
            await pubsub.aclose()

    async def purge(
        self, state: CallState, expected_version: int, retention_s: int
    ) -> CommitResult:
        """Store the ended call's summary state and drop its transcript records; the call
        is forgotten `retention_s` later."""
        call_id = state.call_id
        reply = await self._purge(
            keys=[
                state_key(call_id),
                turns_key(call_id),
                order_key(call_id),
                interrupts_key(call_id),
            ],
            args=[expected_version, _dump(state), retention_s],
        )
        status = reply[0].decode()
        if status == "ok":
            return CommitResult("ok", int(reply[1]))
        return CommitResult("conflict" if status == "conflict" else "not_found")

    async def lock_holder(self, call_id: str) -> str | None:
        holder = await self.redis.get(lock_key(call_id))
        return holder.decode() if isinstance(holder, bytes) else holder

    async def begin_turn(
        self, call_id: str, owner: str, turn_id: str, digest: str, lock_ttl_ms: int
    ) -> BeginResult:
        reply = await self._begin(
            keys=[*_call_keys(call_id), interrupts_key(call_id)],
            args=[turn_id, digest, lock_ttl_ms, owner],
        )
        status = reply[0].decode()
        if status == "ok":
            state = CallState.model_validate_json(reply[2])
            flat = reply[3]
            interrupts = dict(zip(flat[::2], flat[1::2], strict=True))
            call = StoredCall(state, int(reply[1]), _interruptions(interrupts))
            return BeginResult("ok", call=call)
        if status == "stored":
            return BeginResult("stored", stored_result=reply[2], version=int(reply[1]))
        return BeginResult(status)

    async def commit(
        self,
        state: CallState,
        expected_version: int,
        *,
        turn_id: str = "",
        digest: str = "",
        result_json: bytes = b"",
        release_lock_of: str = "",
    ) -> CommitResult:
        reply = await self._commit(
            keys=[*_call_keys(state.call_id), order_key(state.call_id)],
            args=[
                expected_version,
                _dump(state),
                1 if state.ended else 0,
                self.ttl_s,
                turn_id,
                digest,
                result_json,
                release_lock_of,
                self.turn_records,
            ],
        )
        status = reply[0].decode()
        if status == "ok":
            return CommitResult("ok", int(reply[1]))
        return CommitResult("conflict" if status == "conflict" else "not_found")

    async def release_lock(self, call_id: str, turn_id: str) -> None:
        await self._release(keys=[lock_key(call_id)], args=[turn_id])


def _call_keys(call_id: str) -> list[str]:
    return [state_key(call_id), turns_key(call_id), lock_key(call_id)]


def _interruptions(raw: dict[bytes, bytes]) -> dict[str, Interruption]:
    return {turn_id.decode(): Interruption.model_validate_json(doc) for turn_id, doc in raw.items()}


def _dump(state: CallState) -> bytes:
    return state.model_dump_json().encode()
