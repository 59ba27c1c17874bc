"""Call state in Redis: create, load, and the two Lua round trips of a turn.

A turn costs two round trips: `begin` (load state, check idempotency, take the
call's turn lock) and `commit` (compare-and-set on the version, store the turn
result for idempotency, release the lock, refresh the TTL of every key). No
read-modify-write ever happens outside a version check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from dm.keys import interrupts_key, lock_key, state_key, turns_key
from dm.state import CallState, Interruption

BeginStatus = Literal["ok", "stored", "not_found", "ended", "reused", "in_progress", "busy"]
CommitStatus = Literal["ok", "conflict", "not_found"]

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', 0, 'ended', 0, 'doc', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: state, turns, lock, interrupts. ARGV: turn_id, text digest, lock TTL in ms.
_BEGIN = """
local st = redis.call('HMGET', KEYS[1], 'v', 'ended', 'doc')
if not st[1] then return {'not_found'} end
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

# KEYS: state, turns, lock. ARGV: expected version, doc, ended flag, TTL seconds,
# turn_id ('' when the write is not a turn), text digest, result JSON, lock owner to release.
_COMMIT = """
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {'not_found'} end
if v ~= ARGV[1] then return {'conflict', v} end
local nv = tonumber(v) + 1
redis.call('HSET', KEYS[1], 'v', nv, 'doc', ARGV[2], 'ended', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], 'h:' .. ARGV[5], ARGV[6], 'r:' .. ARGV[5], ARGV[7])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
if ARGV[8] ~= '' and redis.call('GET', KEYS[3]) == ARGV[8] then
  redis.call('DEL', KEYS[3])
end
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
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._create = redis.register_script(_CREATE)
        self._begin = redis.register_script(_BEGIN)
        self._commit = redis.register_script(_COMMIT)
        self._release = redis.register_script(_RELEASE)

    async def create(self, state: CallState) -> bool:
        """Store a new call at version 0; False if the call_id is taken."""
        created = await self._create(
            keys=[state_key(state.call_id)], args=[_dump(state), self.ttl_s]
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
    ) -> None:
        key = interrupts_key(call_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, turn_id, interruption.model_dump_json())
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def lock_holder(self, call_id: str) -> str | None:
        holder = await self.redis.get(lock_key(call_id))
        return holder.decode() if isinstance(holder, bytes) else holder

    async def begin_turn(
        self, call_id: str, turn_id: str, digest: str, lock_ttl_ms: int
    ) -> BeginResult:
        reply = await self._begin(
            keys=[*_call_keys(call_id), interrupts_key(call_id)],
            args=[turn_id, digest, lock_ttl_ms],
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
            keys=_call_keys(state.call_id),
            args=[
                expected_version,
                _dump(state),
                1 if state.ended else 0,
                self.ttl_s,
                turn_id,
                digest,
                result_json,
                release_lock_of,
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
