"""Calls and turns: the async shell around the pure turn core (`dm.turn_core`).

A turn runs as its own task, so it completes and is stored even when the client
that asked for it goes away (a dropped socket, a retried request). Its events
(backchannel, reply pieces, done) go to a queue the HTTP layer streams from.
A barge-in cancels the turn's LLM call, wherever in the cluster the turn runs:
the interrupt goes through the call store to every dm replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from dm.engine import start_state
from dm.errors import (
    CallEnded,
    CallError,
    CallExists,
    CallNotFound,
    InterruptTimeout,
    StateConflict,
    TurnFailed,
    TurnIdReused,
    TurnInProgress,
    TurnNotFound,
    UnknownFlow,
    UnsupportedLanguage,
    UnsupportedRegion,
)
from dm.extract.phone import is_region
from dm.flows import Flow
from dm.interview.report import build_report
from dm.interview.rubric import Assessment
from dm.jsonstream import StreamedObject
from dm.llm import Completion, LlmClient, LlmError
from dm.metrics import DmMetrics
from dm.prompt import build_messages, heard_reply, system_prompt
from dm.reply_guard import word_runs
from dm.schema import TurnSchema, build_turn_schema
from dm.settings import DmSettings
from dm.state import CallState, Interruption
from dm.store import CallStore, StoredCall
from dm.turn_core import Action, AskLlm, Finish, Judge, Speak, TurnCore, TurnPlan
from svckit.wire import (
    EVENT_ERROR,
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
REGION_OF_LANGUAGE = {"ru": "RU", "en": "US"}


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
    error: CallError | None = None  # why the turn failed, when it did

    def emit(self, name: str, data: dict[str, Any]) -> None:
        self.events.put_nowait(TurnEvent(name, data))


@dataclass(frozen=True, slots=True)
class ReplayedTurn:
    """A retried turn, answered from its stored result."""

    result: TurnResult


@dataclass
class _LlmRun:
    """What the turn's LLM call came to."""

    completion: Completion | None = None
    failure: FallbackReason | None = None
    cancelled: bool = False
    llm_ms: float = 0.0
    ttft_ms: float | None = None


def text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def new_call_id() -> str:
    """A call id nobody can guess: 128 bits from the OS's CSPRNG."""
    return f"call-{secrets.token_hex(16)}"


class TurnService:
    def __init__(
        self,
        settings: DmSettings,
        store: CallStore,
        flows: Mapping[str, Flow],
        llm: LlmClient,
        metrics: DmMetrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.flows = dict(flows)
        self.llm = llm
        self.metrics = metrics
        self._zone = ZoneInfo(settings.dm_timezone)
        self._modes = settings.reply_mode_overrides()
        self._rules = settings.rules_overrides()
        self._systems = {
            (flow.id, lang): system_prompt(flow, lang)
            for flow in self.flows.values()
            for lang in flow.languages
        }
        self._instruction_runs = {key: word_runs(system) for key, system in self._systems.items()}
        self._schemas: dict[tuple[str, str, str, bool], TurnSchema] = {}
        self._running: dict[tuple[str, str], RunningTurn] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._prefilling: set[str] = set()

    # Calls

    async def create_call(self, request: CallCreate, owner: str) -> CallCreated:
        flow = self.flows.get(request.flow)
        if flow is None:
            raise UnknownFlow(f"no flow '{request.flow}'")
        if request.lang not in flow.languages:
            raise UnsupportedLanguage(
                f"flow '{flow.id}' speaks {', '.join(flow.languages)}, not '{request.lang}'"
            )
        region = self._region(flow, request)
        call_id = request.call_id or new_call_id()
        state = start_state(
            flow, call_id, request.lang, request.metadata, time.time(), region=region, owner=owner
        )
        if not await self.store.create(state):
            raise CallExists(f"call '{call_id}' already exists")
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

    def _region(self, flow: Flow, request: CallCreate) -> str:
        """The call's phone region: its own, else the flow's, else DM_DEFAULT_REGION, else
        the language's country."""
        region = (
            request.region
            or flow.region
            or self.settings.dm_default_region
            or REGION_OF_LANGUAGE.get(request.lang, "US")
        )
        if not is_region(region):
            raise UnsupportedRegion(f"region '{region}' is not one phone numbers are known for")
        return region

    async def get_call(self, call_id: str, owner: str) -> dict[str, Any]:
        return self._describe(await self._load(call_id, owner))

    async def end_call(self, call_id: str, owner: str, reason: str) -> dict[str, Any]:
        """End the call, keep only its summary (the transcript and turn records are
        dropped, the rest kept DM_ENDED_RETENTION_S), and return that; idempotent."""
        for _ in range(5):
            stored = await self._load(call_id, owner)
            if stored.state.purged:
                return self._describe(stored)
            state = stored.state
            ended = state.model_copy(
                update={
                    "ended": True,
                    "end_reason": state.end_reason or reason,
                    "history": [],
                    "purged": True,
                    "updated_at": time.time(),
                }
            )
            retention = self.settings.dm_ended_retention_s
            purge = await self.store.purge(ended, stored.version, retention)
            if purge.status == "ok" and purge.version is not None:
                if not state.ended:
                    self.metrics.calls_ended.labels(reason).inc()
                log.info("call_ended", call_id=call_id, reason=ended.end_reason)
                return self._describe(StoredCall(ended, purge.version, {}))
        raise StateConflict("the call kept changing; try again")

    async def _load(self, call_id: str, owner: str) -> StoredCall:
        stored = await self.store.load(call_id)
        if stored is None or stored.state.owner != owner:
            raise CallNotFound(f"no call '{call_id}'")
        return stored

    def _describe(self, stored: StoredCall) -> dict[str, Any]:
        state = stored.state
        flow = self.flows.get(state.flow)
        described: dict[str, Any] = {
            "call_id": state.call_id,
            "flow": state.flow,
            "lang": state.lang,
            "region": state.region,
            "node": state.node,
            "slots": state.slots,
            "turns": state.turns,
            "ended": state.ended,
            "end_reason": state.end_reason,
            "done": bool(flow and flow.nodes[state.node].final),
            "outcome": state.outcome,
            "transfer_reason": state.transfer_reason,
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
            assessments = {
                node: Assessment.model_validate(found) for node, found in state.assessments.items()
            }
            report = build_report(flow, state.lang, state.answers, assessments)
            described["scores"] = {
                block["block"]: block["score"]
                for block in report["blocks"]
                if block["score"] is not None
            }
            described["red_flags"] = state.red_flags()
            described["report"] = report
        return described

    # Turns

    async def start_turn(
        self, call_id: str, owner: str, request: TurnRequest, received_at: float
    ) -> RunningTurn | ReplayedTurn:
        """Begin a turn: a replay of a stored result, or a running turn streaming events."""
        digest = text_digest(request.text)
        lock_ttl_ms = int((self.settings.dm_turn_deadline_s + LOCK_MARGIN_S) * 1000)
        state_started = time.perf_counter()
        begin = await self.store.begin_turn(call_id, owner, request.turn_id, digest, lock_ttl_ms)
        begin_ms = (time.perf_counter() - state_started) * 1000
        match begin.status:
            case "stored":
                assert begin.stored_result is not None
                self.metrics.replays.inc()
                return ReplayedTurn(TurnResult.model_validate_json(begin.stored_result))
            case "not_found":
                raise CallNotFound(f"no call '{call_id}'")
            case "ended":
                raise CallEnded(f"call '{call_id}' has ended")
            case "reused":
                raise TurnIdReused(f"turn '{request.turn_id}' was already taken with other text")
            case "in_progress":
                raise TurnInProgress(f"turn '{request.turn_id}' is still in progress")
            case "busy":
                raise TurnInProgress("another turn of this call is in progress")
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
        except CallError as exc:
            turn.error = exc
        except Exception as exc:
            # The exception's text may quote the caller: only its type is logged.
            log.error("turn_failed", call_id=turn.call_id, error_type=type(exc).__name__)
            await self.store.release_lock(turn.call_id, turn.turn_id)
            turn.error = TurnFailed("the turn failed; retry it")
        finally:
            if turn.error is not None:
                code, message = error_code(turn.error), str(turn.error)
                turn.emit(EVENT_ERROR, {"code": code, "message": message})
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
        core = TurnCore(
            self._plan(flow, state),
            state,
            call.interruptions,
            turn.turn_id,
            turn.text,
            self._today(),
            time.time(),
        )
        deadline = received_at + self.settings.dm_turn_deadline_s
        run = _LlmRun()
        finish = await self._perform(turn, core, core.start(), run, deadline)
        if finish is None:
            await self._record_cancelled(turn, state)
            return None
        outcome = finish.outcome
        completion = run.completion
        result = TurnResult(
            call_id=state.call_id,
            turn_id=turn.turn_id,
            node_before=state.node,
            reply=outcome.reply,
            next_node=outcome.state.node,
            slots=outcome.state.slots,
            backchannel=finish.backchannel,
            done=outcome.done,
            fallback=finish.fallback_reason is not None,
            fallback_reason=finish.fallback_reason,
            timings=Timings(
                # The stored copy (for replays) carries the time up to the commit.
                total_ms=round((time.perf_counter() - received_at) * 1000, 2),
                llm_ms=round(run.llm_ms, 2),
                llm_ttft_ms=round(run.ttft_ms, 2) if run.ttft_ms is not None else None,
                state_ms=round(begin_ms, 3),
            ),
            usage=Usage(completion_tokens=(completion.completion_tokens or 0) if completion else 0),
            state_version=call.version + 1,
            outcome=outcome.state.outcome if outcome.done else None,
            understood_by=finish.understood_by,
        )
        commit_started = time.perf_counter()
        async with asyncio.timeout(self.settings.dm_redis_timeout_s * 2):
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
        self._observe(flow, result, finish.transfer_reason)
        return result

    async def _perform(
        self,
        turn: RunningTurn,
        core: TurnCore,
        actions: list[Action],
        run: _LlmRun,
        deadline: float,
    ) -> Finish | None:
        """Carry out the core's actions; the Finish it ends with, or None when barged in on."""
        for action in actions:
            if isinstance(action, Speak):
                turn.emit(action.kind, {"turn_id": turn.turn_id, "text": action.text})
            elif isinstance(action, AskLlm):
                await self._call_llm(turn, core, action, run, deadline)
                if run.cancelled:
                    return None
                return await self._perform(turn, core, core.on_llm_done(run.failure), run, deadline)
            elif isinstance(action, Judge):
                judgement = await self._judge(turn, action, deadline)
                return await self._perform(turn, core, core.on_judged(judgement), run, deadline)
            else:
                return action
        raise AssertionError("the turn core ended without finishing the turn")

    async def _commit_failed(self, turn: RunningTurn) -> None:
        """Raise the error that explains why the turn's compare-and-set lost."""
        await self.store.release_lock(turn.call_id, turn.turn_id)
        stored = await self.store.load(turn.call_id)
        if stored is None:
            raise CallNotFound(f"no call '{turn.call_id}'")
        if stored.state.ended:
            raise CallEnded(f"call '{turn.call_id}' ended during the turn")
        raise StateConflict("the call changed during the turn; retry it")

    async def _call_llm(
        self, turn: RunningTurn, core: TurnCore, ask: AskLlm, run: _LlmRun, deadline: float
    ) -> None:
        """Stream the LLM's answer until it ends, fails, passes the deadline or is barged in on."""
        budget = deadline - time.perf_counter() - self.settings.dm_persist_reserve_s

        def on_text(text: str) -> None:
            if run.ttft_ms is None:
                run.ttft_ms = (time.perf_counter() - started) * 1000
            for action in core.on_llm_text(text):
                if isinstance(action, Speak):
                    turn.emit(action.kind, {"turn_id": turn.turn_id, "text": action.text})

        started = time.perf_counter()
        llm = asyncio.create_task(
            self.llm.stream_json(
                ask.messages,
                ask.schema,
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
        run.llm_ms = (time.perf_counter() - started) * 1000
        if llm not in done:
            llm.cancel()
            with contextlib.suppress(asyncio.CancelledError, LlmError):
                await llm
            if barge_in in done:
                run.cancelled = True
            else:
                run.failure = "deadline"
            return
        try:
            run.completion = llm.result()
        except LlmError as exc:
            # The error names the LLM service's failure, never what the caller said.
            log.warning("llm_failed", call_id=turn.call_id, error_type=type(exc).__name__)
            run.failure = "llm_error"
            return
        if run.completion.stop_reason == "deadline":
            run.failure = "deadline"

    async def _judge(
        self, turn: RunningTurn, judge: Judge, deadline: float
    ) -> dict[str, Any] | None:
        """The judge's scoring of an interview answer, or None (the rubric then scores).
        The caller has heard the reply already; the judge uses what is left of the turn."""
        budget = deadline - time.perf_counter() - self.settings.dm_persist_reserve_s
        parser = StreamedObject(None)
        try:
            await self.llm.stream_json(
                judge.messages,
                judge.schema,
                max_tokens=self.settings.dm_judge_max_tokens,
                timeout_s=max(budget, 0.001),
                on_text=parser.feed,
                temperature=0.0,
            )
        except LlmError as exc:
            log.warning("judge_failed", call_id=turn.call_id, error_type=type(exc).__name__)
            return None
        parsed = parser.result()
        return parsed.value if parsed.complete else None

    async def _record_cancelled(self, turn: RunningTurn, state: CallState) -> None:
        cut = Interruption(heard=turn.heard, cancelled=True, user=turn.text, at=time.time())
        await self.store.record_interruption(turn.call_id, turn.turn_id, cut)
        await self.store.release_lock(turn.call_id, turn.turn_id)
        turn.emit(EVENT_TURN_CANCELLED, {"turn_id": turn.turn_id})
        self.metrics.interrupts.labels("cancelled").inc()
        log.info("turn_cancelled", call_id=turn.call_id, turn_id=turn.turn_id, node=state.node)

    async def warm_up(self) -> bool:
        """Have the LLM service decode each flow's system prompt once, before the first call.

        Without this, the first turn of each flow and language pays the whole prefill
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
                log.info("warm_up_waiting", flow=flow_id, lang=lang, error=type(exc).__name__)
                return False
        log.info("warmed_up", prompts=len(self._systems))
        return True

    async def prefill(self, call_id: str, owner: str, text: str) -> None:
        """The caller is still speaking: have the LLM decode this turn's prompt with the
        words so far, so that at the final words only they are left to decode. One at a
        time per call; a partial that comes while one is running is dropped."""
        stored = await self._load(call_id, owner)
        if stored.state.ended or call_id in self._prefilling:
            return
        state = stored.state
        flow = self.flows[state.flow]
        plan = self._plan(flow, state)
        messages = build_messages(
            plan.system,
            flow.nodes[state.node],
            state,
            stored.interruptions,
            plan.schema.moves,
            text,
            plan.prompt_history,
        )
        self._prefilling.add(call_id)
        task = asyncio.create_task(self._prefill(call_id, messages, plan.schema.schema))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _prefill(
        self, call_id: str, messages: list[dict[str, str]], schema: dict[str, Any]
    ) -> None:
        try:
            await self.llm.prefill(messages, schema, timeout_s=self.settings.dm_turn_deadline_s)
            self.metrics.prefills.inc()
        except LlmError as exc:
            log.info("prefill_failed", call_id=call_id, error_type=type(exc).__name__)
        finally:
            self._prefilling.discard(call_id)

    # Barge-in

    async def interrupt(self, call_id: str, owner: str, turn_id: str, heard: str) -> str:
        """The caller barged in on `turn_id` having heard `heard`: cancel it or record it.

        Returns "cancelled" (the turn was stopped before it was applied) or
        "recorded" (it had completed; what the caller heard is noted).
        """
        stored = await self._load(call_id, owner)
        running = self._running.get((call_id, turn_id))
        if running is not None:
            return await self._interrupt_local(running, heard)
        if await self.store.lock_holder(call_id) == turn_id:
            await self.store.publish_interrupt(call_id, turn_id, heard)
            return await self._await_remote(call_id, owner, turn_id)
        return await self._record_heard(stored, turn_id, heard)

    async def _interrupt_local(self, running: RunningTurn, heard: str) -> str:
        running.heard = heard
        if not running.barge_in.done():
            running.barge_in.set_result(None)
        assert running.task is not None
        try:
            result = await asyncio.wait_for(asyncio.shield(running.task), INTERRUPT_WAIT_S)
        except TimeoutError:
            raise InterruptTimeout("the turn did not stop in time") from None
        if result is None:
            return "cancelled" if running.error is None else "failed"
        stored = await self.store.load(running.call_id)
        if stored is None:
            raise CallNotFound(f"no call '{running.call_id}'")
        return await self._record_heard(stored, running.turn_id, heard)

    async def _await_remote(self, call_id: str, owner: str, turn_id: str) -> str:
        """Wait for the replica running the turn to let go of it."""
        for _ in range(int(INTERRUPT_WAIT_S / REMOTE_POLL_S)):
            if await self.store.lock_holder(call_id) != turn_id:
                break
            await asyncio.sleep(REMOTE_POLL_S)
        stored = await self._load(call_id, owner)
        cut = stored.interruptions.get(turn_id)
        return "cancelled" if cut is not None and cut.cancelled else "recorded"

    async def _record_heard(self, stored: StoredCall, turn_id: str, heard: str) -> str:
        if turn_id in stored.interruptions:
            return "cancelled" if stored.interruptions[turn_id].cancelled else "recorded"
        if not any(ex.turn_id == turn_id for ex in stored.state.history):
            raise TurnNotFound(f"no turn '{turn_id}' in call '{stored.state.call_id}'")
        cut = Interruption(heard=heard, cancelled=False, at=time.time())
        await self.store.record_interruption(stored.state.call_id, turn_id, cut)
        self.metrics.interrupts.labels("recorded").inc()
        return "recorded"

    async def listen_for_interrupts(self) -> None:
        """Cancel local turns that a barge-in on another replica names. Runs until cancelled."""
        async for call_id, turn_id, heard in self.store.interrupts():
            running = self._running.get((call_id, turn_id))
            if running is not None:
                task = asyncio.create_task(self._interrupt_quietly(running, heard))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _interrupt_quietly(self, running: RunningTurn, heard: str) -> None:
        try:
            await self._interrupt_local(running, heard)
        except CallError as exc:
            log.warning("interrupt_failed", call_id=running.call_id, code=error_code(exc))

    # Helpers

    def _plan(self, flow: Flow, state: CallState) -> TurnPlan:
        node = flow.nodes[state.node]
        generate = self._mode(flow, node.id) == "generate"
        rules = self._rules.get(flow.id) or self._rules.get("*")
        return TurnPlan(
            flow=flow,
            schema=self._schema(flow, node.id, state.lang, generate),
            system=self._systems[(flow.id, state.lang)],
            instruction_runs=self._instruction_runs[(flow.id, state.lang)],
            generate=generate,
            rules=flow.rules if rules is None else rules == "on",
            scoring=self.settings.scoring(),
            prompt_history=self.settings.dm_prompt_history_turns,
            history_cap=self.settings.dm_history_turns,
        )

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
        return self.settings.dm_today or datetime.now(self._zone).date()

    def _observe(self, flow: Flow, result: TurnResult, transfer_reason: str | None) -> None:
        t = result.timings
        m = self.metrics
        m.turns.labels(flow.id, str(result.fallback).lower()).inc()
        m.understood.labels(flow.id, result.understood_by).inc()
        m.turn_seconds.observe(t.total_ms / 1000)
        m.added_seconds.observe(max(t.total_ms - t.llm_ms, 0.0) / 1000)
        if result.understood_by == "llm":
            m.llm_seconds.observe(t.llm_ms / 1000)
        if t.llm_ttft_ms is not None:
            m.llm_ttft_seconds.observe(t.llm_ttft_ms / 1000)
        if result.fallback_reason:
            m.fallbacks.labels(result.fallback_reason).inc()
        if t.total_ms > self.settings.dm_turn_deadline_s * 1000:
            m.sla_misses.inc()
        if result.outcome is not None:
            m.calls_ended.labels(result.outcome).inc()
        if result.outcome == "transfer":
            m.transfers.labels(flow.id, transfer_reason or "unknown").inc()
        log.info(
            "turn",
            call_id=result.call_id,
            turn_id=result.turn_id,
            flow=flow.id,
            node_before=result.node_before,
            next_node=result.next_node,
            understood_by=result.understood_by,
            done=result.done,
            outcome=result.outcome,
            fallback=result.fallback,
            fallback_reason=result.fallback_reason,
            total_ms=t.total_ms,
            llm_ms=t.llm_ms,
            llm_ttft_ms=t.llm_ttft_ms,
            state_ms=t.state_ms,
            completion_tokens=result.usage.completion_tokens,
            state_version=result.state_version,
        )


def error_code(error: CallError) -> str:
    """The contract's snake_case code of a call error: CallNotFound -> call_not_found."""
    name = type(error).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
