"""Calls and turns: the dm's service layer between the HTTP API and the pure engine.

A turn runs as its own task, so it completes and is stored even when the client
that asked for it goes away (a dropped socket, a retried request). Its events
(backchannel, reply pieces, done) go to a queue the HTTP layer streams from.
A barge-in cancels the turn's LLM call, wherever in the cluster the turn runs:
the interrupt is published on a Redis channel every dm replica listens to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import structlog
from redis.asyncio import Redis

from dm.backchannel import choose_backchannel, strip_echo
from dm.engine import Understanding, apply_turn, start_state, understand
from dm.flows import Flow
from dm.jsonstream import StreamedObject
from dm.keys import INTERRUPT_CHANNEL
from dm.llm import Completion, LlmClient, LlmError
from dm.metrics import DmMetrics
from dm.prompt import build_messages, heard_reply, system_prompt
from dm.reply_guard import in_language, is_parroting, recites, word_runs
from dm.schema import TurnSchema, build_turn_schema
from dm.settings import DmSettings
from dm.speakable import SpeakableChunker, split_sentences
from dm.state import CallState, Interruption
from dm.store import CallStore, StoredCall
from svckit.errors import ApiError
from svckit.wire import (
    EVENT_BACKCHANNEL,
    EVENT_ERROR,
    EVENT_REPLY_DELTA,
    EVENT_TURN_DONE,
    CallCreate,
    CallCreated,
    FallbackReason,
    Timings,
    TurnRequest,
    TurnResult,
    Usage,
)

log = structlog.get_logger("dm.turn")

EVENT_TURN_CANCELLED = "turn.cancelled"
LOCK_MARGIN_S = 2.0  # the turn lock outlives the deadline by this much
INTERRUPT_WAIT_S = 10.0
REMOTE_POLL_S = 0.02
WARM_UP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class TurnEvent:
    name: str
    data: dict[str, Any]


@dataclass
class RunningTurn:
    """A turn in flight in this process."""

    call_id: str
    turn_id: str
    text: str
    events: asyncio.Queue[TurnEvent | None] = field(default_factory=asyncio.Queue)
    # Resolved when the caller barges in; a future, not an Event, so the LLM call can
    # wait on it beside its own task without a task per turn to watch an Event.
    barge_in: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    heard: str = ""
    task: asyncio.Task[TurnResult | None] | None = None
    error: ApiError | None = None  # why the turn failed, when it did

    def emit(self, name: str, data: dict[str, Any]) -> None:
        self.events.put_nowait(TurnEvent(name, data))


@dataclass(frozen=True, slots=True)
class ReplayedTurn:
    """A retried turn, answered from its stored result."""

    result: TurnResult


@dataclass
class _LlmPhase:
    """What the LLM call produced, the reply pieces already sent included."""

    parser: StreamedObject
    backchannel: str
    lang: str
    # Texts a generated reply must not merely repeat: the caller's words, the agent's lines.
    echo_sources: tuple[str, ...] = ()
    # The word runs of the LLM's instructions, which no reply may recite.
    instruction_runs: frozenset[tuple[str, ...]] = frozenset()
    # Whole sentences only: a reply the length bound cuts mid-sentence loses that sentence.
    chunker: SpeakableChunker = field(default_factory=lambda: SpeakableChunker(min_words=None))
    spoken: list[str] = field(default_factory=list)
    # The reply parroted, recited its instructions or was in another language: nothing
    # (more) of it is spoken.
    refused: bool = False
    reply_ended: bool = False
    completion: Completion | None = None
    failure: FallbackReason | None = None
    cancelled: bool = False
    llm_ms: float = 0.0
    ttft_ms: float | None = None  # first content from the LLM, also when it then failed

    def end_reply(self, turn: RunningTurn, reply_chars: int) -> None:
        """The reply string closed: speak its last sentence, unless the bound cut it."""
        if self.reply_ended:
            return
        self.reply_ended = True
        rest = self.chunker.flush().rstrip()
        if len(self.parser.text) < reply_chars:
            self.speak(turn, [rest])

    def speak(self, turn: RunningTurn, pieces: list[str]) -> None:
        """Send reply pieces; the first loses a repeat of the backchannel, a reply that
        starts by parroting or in another language is not sent at all, and one that
        recites its instructions is cut where it starts to."""
        pieces = [piece for piece in pieces if piece]
        if self.refused or not pieces:
            return
        if not self.spoken:
            pieces[0] = strip_echo(pieces[0], self.backchannel)
            first = pieces[0]
            if is_parroting(first, *self.echo_sources) or not in_language(first, self.lang):
                self.refused = True
                return
        for piece in pieces:
            if recites(piece, self.instruction_runs):
                self.refused = True
                return
            self.spoken.append(piece)
            turn.emit(EVENT_REPLY_DELTA, {"turn_id": turn.turn_id, "text": piece})


def text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class TurnService:
    def __init__(
        self,
        settings: DmSettings,
        store: CallStore,
        redis: Redis,
        flows: Mapping[str, Flow],
        llm: LlmClient,
        metrics: DmMetrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.redis = redis
        self.flows = dict(flows)
        self.llm = llm
        self.metrics = metrics
        self._zone = ZoneInfo(settings.dm_timezone)
        self._modes = settings.reply_mode_overrides()
        self._systems = {
            (flow.id, lang): system_prompt(flow, lang)
            for flow in self.flows.values()
            for lang in flow.languages
        }
        self._instruction_runs = {key: word_runs(system) for key, system in self._systems.items()}
        self._schemas: dict[tuple[str, str, str, bool], TurnSchema] = {}
        self._running: dict[tuple[str, str], RunningTurn] = {}
        self._background: set[asyncio.Task[None]] = set()

    # Calls

    async def create_call(self, request: CallCreate) -> CallCreated:
        flow = self.flows.get(request.flow)
        if flow is None:
            raise ApiError(422, "unknown_flow", f"no flow '{request.flow}'")
        if request.lang not in flow.languages:
            raise ApiError(
                422,
                "unsupported_language",
                f"flow '{flow.id}' speaks {', '.join(flow.languages)}, not '{request.lang}'",
            )
        call_id = request.call_id or f"call-{time.time_ns():x}"
        state = start_state(flow, call_id, request.lang, request.metadata, time.time())
        if not await self.store.create(state):
            raise ApiError(409, "call_exists", f"call '{call_id}' already exists")
        self.metrics.calls_started.labels(flow.id).inc()
        log.info("call_started", call_id=call_id, flow=flow.id, lang=request.lang)
        return CallCreated(
            call_id=call_id,
            flow=flow.id,
            lang=state.lang,
            node=state.node,
            reply=state.greeting,
            state_version=0,
        )

    async def get_call(self, call_id: str) -> dict[str, Any]:
        return self._describe(await self._load(call_id))

    async def end_call(self, call_id: str, reason: str) -> dict[str, Any]:
        """End the call (idempotent) and return its summary."""
        for _ in range(5):
            stored = await self._load(call_id)
            if stored.state.ended:
                return self._describe(stored)
            ended = stored.state.model_copy(
                update={"ended": True, "end_reason": reason, "updated_at": time.time()}
            )
            commit = await self.store.commit(ended, stored.version)
            if commit.status == "ok" and commit.version is not None:
                self.metrics.calls_ended.labels(reason).inc()
                log.info("call_ended", call_id=call_id, reason=reason)
                return self._describe(StoredCall(ended, commit.version, stored.interruptions))
        raise ApiError(409, "state_conflict", "the call kept changing; try again")

    async def _load(self, call_id: str) -> StoredCall:
        stored = await self.store.load(call_id)
        if stored is None:
            raise ApiError(404, "call_not_found", f"no call '{call_id}'")
        return stored

    def _describe(self, stored: StoredCall) -> dict[str, Any]:
        state = stored.state
        flow = self.flows.get(state.flow)
        described: dict[str, Any] = {
            "call_id": state.call_id,
            "flow": state.flow,
            "lang": state.lang,
            "node": state.node,
            "slots": state.slots,
            "turns": state.turns,
            "ended": state.ended,
            "end_reason": state.end_reason,
            "done": bool(flow and flow.nodes[state.node].final),
            "state_version": stored.version,
            "created_at": state.created_at,
            "updated_at": state.updated_at,
            "history": [
                {
                    "turn_id": ex.turn_id,
                    "node": ex.node,
                    "user": ex.user,
                    "agent": ex.agent,
                    "heard": heard_reply(ex, stored.interruptions),
                    "interrupted": ex.turn_id in stored.interruptions,
                }
                for ex in state.history
            ],
            "cancelled_turns": [
                {"turn_id": turn_id, "user": cut.user, "heard": cut.heard}
                for turn_id, cut in stored.interruptions.items()
                if cut.cancelled
            ],
        }
        if flow is not None and flow.kind == "interview":
            described["scores"] = state.block_scores()
            described["red_flags"] = list(state.red_flags)
        return described

    # Turns

    async def start_turn(
        self, call_id: str, request: TurnRequest, received_at: float
    ) -> RunningTurn | ReplayedTurn:
        """Begin a turn: a replay of a stored result, or a running turn streaming events."""
        digest = text_digest(request.text)
        lock_ttl_ms = int((self.settings.dm_turn_deadline_s + LOCK_MARGIN_S) * 1000)
        state_started = time.perf_counter()
        begin = await self.store.begin_turn(call_id, request.turn_id, digest, lock_ttl_ms)
        begin_ms = (time.perf_counter() - state_started) * 1000
        match begin.status:
            case "stored":
                assert begin.stored_result is not None
                self.metrics.replays.inc()
                return ReplayedTurn(TurnResult.model_validate_json(begin.stored_result))
            case "not_found":
                raise ApiError(404, "call_not_found", f"no call '{call_id}'")
            case "ended":
                raise ApiError(410, "call_ended", f"call '{call_id}' has ended")
            case "reused":
                raise ApiError(
                    422,
                    "turn_id_reused",
                    f"turn '{request.turn_id}' was already taken with other text",
                )
            case "in_progress":
                raise ApiError(
                    409,
                    "turn_in_progress",
                    f"turn '{request.turn_id}' is still in progress",
                    {"Retry-After": "1"},
                )
            case "busy":
                raise ApiError(
                    409,
                    "turn_in_progress",
                    "another turn of this call is in progress",
                    {"Retry-After": "1"},
                )
        assert begin.call is not None
        running = RunningTurn(call_id, request.turn_id, request.text)
        self._running[(call_id, request.turn_id)] = running
        running.task = asyncio.create_task(
            self._run(running, begin.call, digest, received_at, begin_ms),
            name=f"turn:{call_id}:{request.turn_id}",
        )
        running.task.add_done_callback(
            lambda _t: self._running.pop((call_id, request.turn_id), None)
        )
        return running

    async def _run(
        self,
        turn: RunningTurn,
        call: StoredCall,
        digest: str,
        received_at: float,
        begin_ms: float,
    ) -> TurnResult | None:
        """Run the turn to its end; None when it was cancelled or failed (see `turn.error`)."""
        try:
            return await self._run_turn(turn, call, digest, received_at, begin_ms)
        except ApiError as exc:
            turn.error = exc
        except Exception as exc:
            log.error("turn_failed", call_id=turn.call_id, turn_id=turn.turn_id, exc_info=exc)
            await self.store.release_lock(turn.call_id, turn.turn_id)
            turn.error = ApiError(503, "turn_failed", "the turn failed; retry it")
        finally:
            if turn.error is not None:
                turn.emit(EVENT_ERROR, {"code": turn.error.code, "message": turn.error.message})
            turn.events.put_nowait(None)
        return None

    async def _run_turn(
        self,
        turn: RunningTurn,
        call: StoredCall,
        digest: str,
        received_at: float,
        begin_ms: float,
    ) -> TurnResult | None:
        state = call.state
        flow = self.flows[state.flow]
        node = flow.nodes[state.node]
        generate = self._mode(flow, node.id) == "generate"
        schema = self._schema(flow, node.id, state.lang, generate)
        backchannel = choose_backchannel(
            state.lang, state.call_id, state.turns, state.last_backchannel
        )
        turn.emit(EVENT_BACKCHANNEL, {"turn_id": turn.turn_id, "text": backchannel})

        messages = build_messages(
            self._systems[(flow.id, state.lang)],
            node,
            state,
            call.interruptions,
            schema.moves,
            turn.text,
            self.settings.dm_prompt_history_turns,
        )
        previous = state.history[-1].agent if state.history else state.greeting
        phase = _LlmPhase(
            StreamedObject("reply" if schema.has_reply else None),
            backchannel,
            state.lang,
            echo_sources=(turn.text, previous, node.goal),
            instruction_runs=self._instruction_runs[(flow.id, state.lang)],
        )
        deadline = received_at + self.settings.dm_turn_deadline_s
        await self._call_llm(turn, phase, messages, schema, deadline)
        if phase.cancelled:
            await self._record_cancelled(turn, state)
            return None

        understanding: Understanding | None = None
        if phase.failure is None:
            parsed = phase.parser.result()
            if parsed.value is None or "next_node" not in parsed.value:
                stopped = phase.completion.stop_reason if phase.completion else None
                phase.failure = "deadline" if stopped == "deadline" else "invalid_output"
            else:
                understanding = understand(
                    flow, node, schema, parsed.value, turn.text, state.lang, self._today()
                )
                phase.end_reply(turn, schema.reply_chars)
        spoken = "".join(phase.spoken)
        outcome = apply_turn(
            flow,
            state,
            turn_id=turn.turn_id,
            text=turn.text,
            understanding=understanding,
            llm_words=spoken,
            backchannel=backchannel,
            now=time.time(),
            history_cap=self.settings.dm_history_turns,
        )
        for piece in split_sentences(outcome.reply[len(spoken) :]):
            turn.emit(EVENT_REPLY_DELTA, {"turn_id": turn.turn_id, "text": piece})

        completion = phase.completion
        ttft = phase.ttft_ms
        result = TurnResult(
            call_id=state.call_id,
            turn_id=turn.turn_id,
            node_before=node.id,
            reply=outcome.reply,
            next_node=outcome.state.node,
            slots=outcome.state.slots,
            backchannel=backchannel,
            done=outcome.done,
            fallback=phase.failure is not None,
            fallback_reason=phase.failure,
            timings=Timings(
                # The stored copy (for replays) carries the time up to the commit.
                total_ms=round((time.perf_counter() - received_at) * 1000, 2),
                llm_ms=round(phase.llm_ms, 2),
                llm_ttft_ms=round(ttft, 2) if ttft is not None else None,
                state_ms=round(begin_ms, 3),
            ),
            usage=Usage(completion_tokens=(completion.completion_tokens or 0) if completion else 0),
            state_version=call.version + 1,
        )
        commit_started = time.perf_counter()
        commit = await self.store.commit(
            outcome.state,
            call.version,
            turn_id=turn.turn_id,
            digest=digest,
            result_json=result.model_dump_json().encode(),
            release_lock_of=turn.turn_id,
        )
        finished = time.perf_counter()
        if commit.status != "ok":
            await self._commit_failed(turn)
        result.timings.state_ms = round(begin_ms + (finished - commit_started) * 1000, 3)
        result.timings.total_ms = round((finished - received_at) * 1000, 2)
        turn.emit(EVENT_TURN_DONE, result.model_dump())
        self._observe(flow, result)
        if outcome.done:
            self.metrics.calls_ended.labels("completed").inc()
        return result

    async def _commit_failed(self, turn: RunningTurn) -> None:
        """Raise the error that explains why the turn's compare-and-set lost."""
        await self.store.release_lock(turn.call_id, turn.turn_id)
        stored = await self.store.load(turn.call_id)
        if stored is None:
            raise ApiError(404, "call_not_found", f"no call '{turn.call_id}'")
        if stored.state.ended:
            raise ApiError(410, "call_ended", f"call '{turn.call_id}' ended during the turn")
        raise ApiError(409, "state_conflict", "the call changed during the turn; retry it")

    async def _call_llm(
        self,
        turn: RunningTurn,
        phase: _LlmPhase,
        messages: list[dict[str, str]],
        schema: TurnSchema,
        deadline: float,
    ) -> None:
        """Stream the LLM's answer until it ends, fails, passes the deadline or is barged in on."""
        budget = deadline - time.perf_counter() - self.settings.dm_persist_reserve_s

        def on_text(text: str) -> None:
            if phase.ttft_ms is None:
                phase.ttft_ms = (time.perf_counter() - started) * 1000
            delta = phase.parser.feed(text)
            if delta:
                phase.speak(turn, phase.chunker.feed(delta))
            if phase.parser.field_complete:
                phase.end_reply(turn, schema.reply_chars)

        started = time.perf_counter()
        llm = asyncio.create_task(
            self.llm.stream_json(
                messages,
                schema.schema,
                max_tokens=self.settings.dm_max_tokens,
                timeout_s=max(budget, 0.001),
                on_text=on_text,
            )
        )
        barge_in = turn.barge_in
        watched: set[asyncio.Future[Any]] = {llm, barge_in}
        done, _ = await asyncio.wait(
            watched, timeout=max(budget, 0.0), return_when=asyncio.FIRST_COMPLETED
        )
        phase.llm_ms = (time.perf_counter() - started) * 1000
        if llm not in done:
            llm.cancel()
            with contextlib.suppress(asyncio.CancelledError, LlmError):
                await llm
            if barge_in in done:
                phase.cancelled = True
            else:
                phase.failure = "deadline"
            return
        try:
            phase.completion = llm.result()
        except LlmError as exc:
            log.warning("llm_failed", call_id=turn.call_id, error=str(exc)[:300])
            phase.failure = "llm_error"

    async def _record_cancelled(self, turn: RunningTurn, state: CallState) -> None:
        cut = Interruption(heard=turn.heard, cancelled=True, user=turn.text, at=time.time())
        await self.store.record_interruption(turn.call_id, turn.turn_id, cut)
        await self.store.release_lock(turn.call_id, turn.turn_id)
        turn.emit(EVENT_TURN_CANCELLED, {"turn_id": turn.turn_id})
        self.metrics.interrupts.labels("cancelled").inc()
        log.info("turn_cancelled", call_id=turn.call_id, turn_id=turn.turn_id, node=state.node)

    async def warm_up(self) -> bool:
        """Have the LLM service decode each flow's system prompt once, before the first call.

        llm-local keeps a decoded system prompt and copies it into each new request;
        without this, the first turn of each flow and language pays the whole prefill
        (~250 tokens, seconds on a CPU model) inside its deadline.
        """
        for (flow_id, lang), system in self._systems.items():
            messages = [{"role": "system", "content": system}, {"role": "user", "content": "."}]
            try:
                await self.llm.stream_json(
                    messages,
                    {"type": "object"},
                    max_tokens=1,
                    timeout_s=WARM_UP_TIMEOUT_S,
                    on_text=lambda _text: None,
                )
            except LlmError as exc:
                log.info("warm_up_waiting", flow=flow_id, lang=lang, error=str(exc)[:200])
                return False
        log.info("warmed_up", prompts=len(self._systems))
        return True

    # Barge-in

    async def interrupt(self, call_id: str, turn_id: str, heard: str) -> str:
        """The caller barged in on `turn_id` having heard `heard`: cancel it or record it.

        Returns "cancelled" (the turn was stopped before it was applied) or
        "recorded" (it had completed; what the caller heard is noted).
        """
        running = self._running.get((call_id, turn_id))
        if running is not None:
            return await self._interrupt_local(running, heard)
        if await self.store.lock_holder(call_id) == turn_id:
            message = {"call_id": call_id, "turn_id": turn_id, "heard": heard}
            await self.redis.publish(INTERRUPT_CHANNEL, orjson.dumps(message))
            return await self._await_remote(call_id, turn_id)
        return await self._record_heard(call_id, turn_id, heard)

    async def _interrupt_local(self, running: RunningTurn, heard: str) -> str:
        running.heard = heard
        if not running.barge_in.done():
            running.barge_in.set_result(None)
        assert running.task is not None
        try:
            result = await asyncio.wait_for(asyncio.shield(running.task), INTERRUPT_WAIT_S)
        except TimeoutError:
            raise ApiError(503, "interrupt_timeout", "the turn did not stop in time") from None
        if result is None:
            return "cancelled" if running.error is None else "failed"
        return await self._record_heard(running.call_id, running.turn_id, heard)

    async def _await_remote(self, call_id: str, turn_id: str) -> str:
        """Wait for the replica running the turn to let go of it."""
        for _ in range(int(INTERRUPT_WAIT_S / REMOTE_POLL_S)):
            if await self.store.lock_holder(call_id) != turn_id:
                break
            await asyncio.sleep(REMOTE_POLL_S)
        stored = await self._load(call_id)
        cut = stored.interruptions.get(turn_id)
        return "cancelled" if cut is not None and cut.cancelled else "recorded"

    async def _record_heard(self, call_id: str, turn_id: str, heard: str) -> str:
        stored = await self._load(call_id)
        if turn_id in stored.interruptions:
            return "cancelled" if stored.interruptions[turn_id].cancelled else "recorded"
        if not any(ex.turn_id == turn_id for ex in stored.state.history):
            raise ApiError(404, "turn_not_found", f"no turn '{turn_id}' in call '{call_id}'")
        cut = Interruption(heard=heard, cancelled=False, at=time.time())
        await self.store.record_interruption(call_id, turn_id, cut)
        self.metrics.interrupts.labels("recorded").inc()
        return "recorded"

    async def listen_for_interrupts(self) -> None:
        """Cancel local turns that a barge-in on another replica names. Runs until cancelled."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(INTERRUPT_CHANNEL)
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    data = orjson.loads(message["data"])
                    key = (str(data["call_id"]), str(data["turn_id"]))
                    heard = str(data.get("heard", ""))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
                running = self._running.get(key)
                if running is not None:
                    task = asyncio.create_task(self._interrupt_quietly(running, heard))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
        finally:
            await pubsub.aclose()

    async def _interrupt_quietly(self, running: RunningTurn, heard: str) -> None:
        try:
            await self._interrupt_local(running, heard)
        except ApiError as exc:
            log.warning("interrupt_failed", call_id=running.call_id, code=exc.code)

    # Helpers

    def _mode(self, flow: Flow, node_id: str) -> str:
        override = self._modes.get(flow.id) or self._modes.get("*")
        return override or flow.reply_mode_of(flow.nodes[node_id])

    def _schema(self, flow: Flow, node_id: str, lang: str, generate: bool) -> TurnSchema:
        key = (flow.id, node_id, lang, generate)
        schema = self._schemas.get(key)
        if schema is None:
            schema = build_turn_schema(
                flow,
                flow.nodes[node_id],
                lang,
                generate=generate,
                max_tokens=self.settings.dm_max_tokens,
            )
            self._schemas[key] = schema
        return schema

    def _today(self) -> date:
        return datetime.now(self._zone).date()

    def _observe(self, flow: Flow, result: TurnResult) -> None:
        t = result.timings
        m = self.metrics
        m.turns.labels(flow.id, str(result.fallback).lower()).inc()
        m.turn_seconds.observe(t.total_ms / 1000)
        m.added_seconds.observe(max(t.total_ms - t.llm_ms, 0.0) / 1000)
        m.llm_seconds.observe(t.llm_ms / 1000)
        if t.llm_ttft_ms is not None:
            m.llm_ttft_seconds.observe(t.llm_ttft_ms / 1000)
        if result.fallback_reason:
            m.fallbacks.labels(result.fallback_reason).inc()
        if t.total_ms > self.settings.dm_turn_deadline_s * 1000:
            m.sla_misses.inc()
        log.info(
            "turn",
            call_id=result.call_id,
            turn_id=result.turn_id,
            flow=flow.id,
            node_before=result.node_before,
            next_node=result.next_node,
            done=result.done,
            fallback=result.fallback,
            fallback_reason=result.fallback_reason,
            total_ms=t.total_ms,
            llm_ms=t.llm_ms,
            llm_ttft_ms=t.llm_ttft_ms,
            state_ms=t.state_ms,
            completion_tokens=result.usage.completion_tokens,
            state_version=result.state_version,
        )
