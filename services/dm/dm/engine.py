"""The turn's logic, with no I/O: what the caller said, where the call goes, what it hears.

The caller's words are read first (`dm.reading`); the LLM, when it is asked at all, only
proposes, and its values count only when grounded in those words. Code decides the move:

- Slot discipline: the step's own slots take what was read; a slot the step does not ask
  for takes only an explicit value ("меня зовут…", a whole number, "tomorrow"); a filled
  slot changes only when the caller corrects it (a correction cue, or any new value at a
  read-back).
- The next node is always one the graph allows from here with its guards satisfied, and
  steps already answered are skipped.
- A way out: a caller who asks for a person is handed over at once, and one the agent
  cannot understand after `max_reasks` re-asks at a step is handed over too. A call never
  loops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from dm.extract import grounded
from dm.extract.names import corrected_name, read_name
from dm.extract.phone import format_digits, replace_last_digits
from dm.extract.text import normalize
from dm.flows import Flow, Node, Transition
from dm.interview.rubric import Assessment
from dm.reading import Heard, Reading, read_turn
from dm.render import render
from dm.schema import TurnSchema, fillable_slots
from dm.state import CallState, Exchange

INTERVIEW_FOLLOWUPS = 1
# Question words that ask why a detail is needed: answered with the slot's `explain`.
_WHY = re.compile(r"\b(зачем|почему|для чего|why|what for|what do you need)\b")

StayReason = Literal["missing", "followup", "blocked", "reread"]
TransferReason = Literal["caller_asked", "not_understood"]


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the LLM proposed for one utterance, after validation."""

    slots: dict[str, Any]  # values grounded in the caller's words
    next_node: str | None  # an allowed node, if it named one


NO_PROPOSAL = Proposal({}, None)


@dataclass(frozen=True, slots=True)
class Decision:
    node: str
    slots: dict[str, Any]
    stayed: StayReason | None = None
    partial_phone: str = ""
    failures: int = 0  # failed asks at `node` so far
    transfer: TransferReason | None = None
    corrected: tuple[str, ...] = ()  # filled slots the caller changed
    refused: dict[str, str] = field(default_factory=dict)  # slot -> why its value was refused


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    state: CallState
    reply: str  # the whole reply: the LLM's words already spoken, then the flow's text
    done: bool


def join_reply(spoken: str, suffix: str) -> str:
    """`spoken` followed by `suffix`, one space between; `spoken` stays a prefix."""
    if not suffix:
        return spoken
    if not spoken.strip():
        return suffix
    return spoken + ("" if spoken.endswith(" ") else " ") + suffix


def propose(
    flow: Flow, node: Node, schema: TurnSchema, llm: dict[str, Any], reading: Reading
) -> Proposal:
    """The LLM's answer as a proposal: slot values only where its words are the caller's
    and a reader accepts them, a next node only among the allowed ones."""
    llm_slots = llm.get("slots")
    slots: dict[str, Any] = {}
    if isinstance(llm_slots, dict):
        for name in fillable_slots(flow, node):
            value = _grounded_value(flow, name, llm_slots.get(name), reading, node)
            if value is not None:
                slots[name] = value
    proposed = llm.get("next_node")
    return Proposal(
        slots=slots,
        next_node=proposed if isinstance(proposed, str) and proposed in schema.moves else None,
    )


def _grounded_value(flow: Flow, name: str, proposed: Any, reading: Reading, node: Node) -> Any:
    """The LLM's value for `name` when the caller's words back it and it reads as one."""
    spec = flow.slots[name]
    if name not in node.collects or name in reading.values or proposed is None:
        return None
    if spec.type in ("enum", "boolean"):
        # A choice the caller's words do not name is a guess (the words were read for
        # every value's synonyms already): asked "how much is it?", a small model names
        # an exam anyway.
        return None
    cues = reading.cues
    if spec.type == "name" and (cues.question or cues.refusal or cues.person):
        return None
    if spec.type == "integer":
        ok = isinstance(proposed, int) and not isinstance(proposed, bool)
        return proposed if ok and str(proposed) in reading.text else None
    if not isinstance(proposed, str) or not grounded(proposed, reading.text):
        return None
    if spec.type == "name":
        found = read_name(proposed, bare=True)
        return found.value[: spec.max_length] if found else None
    if spec.type == "string":
        return " ".join(proposed.split())[: spec.max_length]
    return None


def followups_allowed(flow: Flow, node: Node) -> int | None:
    if node.max_followups is not None:
        return node.max_followups
    return INTERVIEW_FOLLOWUPS if flow.kind == "interview" else None


def decide(flow: Flow, state: CallState, reading: Reading, proposal: Proposal) -> Decision:
    """Where the call goes after this utterance, and with which slots."""
    node = flow.nodes[state.node]
    transfer_node = flow.transfer_node
    if reading.cues.person and transfer_node is not None:
        return Decision(transfer_node, dict(state.slots), transfer="caller_asked")
    given, corrected = _taken(flow, node, state, reading, proposal)
    slots = {**state.slots, **given}
    partial = "" if "phone" in given else state.partial_phone
    heard_more = bool(reading.partial_phone) and len(reading.partial_phone) > len(partial)
    if heard_more:
        partial = reading.partial_phone
    refused = dict(reading.refused)
    if node.readback and corrected:
        target = flow.nodes[node.after_correction or node.id]
        cleared = {k: (None if k in target.collects else v) for k, v in slots.items()}
        return Decision(target.id, cleared, "reread", partial, corrected=corrected)
    limit = followups_allowed(flow, node)
    may_stay = limit is None or state.node_turns < limit
    missing = [name for name in node.collects if slots.get(name) is None]
    progress = bool(given) or heard_more
    stay: StayReason | None = None
    if missing and may_stay:
        stay = "missing"
    elif not node.collects and proposal.next_node == node.id and may_stay:
        return Decision(node.id, slots, "followup", partial, corrected=corrected)
    else:
        allowed = [t for t in node.transitions if guards_pass(t, slots)]
        if allowed:
            chosen = next((t for t in allowed if t.to == proposal.next_node), allowed[0])
            moved, slots = _follow(flow, node, chosen, slots, given)
            return Decision(moved, slots, None, partial, corrected=corrected, refused=refused)
        stay = "blocked"
    failures = state.failures + (0 if progress else 1)
    if failures > flow.max_reasks and transfer_node is not None:
        return Decision(transfer_node, slots, transfer="not_understood", refused=refused)
    return Decision(node.id, slots, stay, partial, failures, None, corrected, refused)


def _taken(
    flow: Flow, node: Node, state: CallState, reading: Reading, proposal: Proposal
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The values this turn sets, and which of them correct a filled slot."""
    asked = {*node.collects, *node.accepts}
    heard: dict[str, Heard] = {
        **{name: Heard(value, explicit=False) for name, value in proposal.slots.items()},
        **reading.values,
    }
    given: dict[str, Any] = {}
    corrected: list[str] = []
    for name, value in heard.items():
        before = state.slots.get(name)
        if value.surname and isinstance(before, str):
            value = Heard(with_surname(before, value.value), value.explicit)
        if name in asked:
            given[name] = value.value
        elif not flow.volunteered_slots or before == value.value:
            continue
        elif before is None:
            if value.explicit:
                given[name] = value.value
        elif (value.explicit and (node.readback or reading.cues.correction)) or (
            node.readback and reading.cues.correction
        ):
            given[name] = value.value
            corrected.append(name)
    for name, spec in flow.slots.items():
        before = state.slots.get(name)
        if spec.type == "name" and isinstance(before, str) and name not in given:
            renamed = corrected_name(before, reading.text)
            if renamed is not None:
                given[name] = renamed
                corrected.append(name)
    phone = state.slots.get("phone")
    if reading.cues.last_digits and isinstance(phone, str) and "phone" not in given:
        region = state.region
        replaced = replace_last_digits(phone, reading.cues.last_digits, region)
        if replaced is not None and replaced != phone:
            given["phone"] = replaced
            corrected.append("phone")
    return given, tuple(corrected)


def answer_so_far(state: CallState, node_id: str, text: str) -> str:
    """The candidate's whole answer at a question: what was said there before, and `text`."""
    before = state.answers.get(node_id, "")
    return f"{before}\n{text}" if before else text


def with_surname(name: str, surname: str) -> str:
    """`name` with `surname` as its last word: "Lisa Thompson" + "Thomson"."""
    parts = name.split()
    return " ".join([*(parts[:-1] if len(parts) > 1 else parts), surname])


def _follow(
    flow: Flow, origin: Node, transition: Transition, slots: dict[str, Any], given: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Take `transition`, then skip on through steps whose slots are already filled."""
    seen = {origin.id}
    while True:
        target = flow.nodes[transition.to]
        slots = _reset(transition.reset, slots, given, target)
        answered = target.collects and all(slots.get(n) is not None for n in target.collects)
        if target.final or not answered or target.id in seen:
            return target.id, slots
        seen.add(target.id)
        onward = [t for t in target.transitions if guards_pass(t, slots)]
        if not onward:
            return target.id, slots
        transition = onward[0]


def guards_pass(transition: Transition, slots: dict[str, Any]) -> bool:
    for name, condition in transition.when.items():
        value = slots.get(name)
        if condition == "filled":
            ok = value is not None
        elif condition == "empty":
            ok = value is None
        else:
            ok = value == condition and value is not None
        if not ok:
            return False
    return True


def _reset(
    names: list[str], slots: dict[str, Any], given: dict[str, Any], target: Node
) -> dict[str, Any]:
    """Clear `names`, except a value the caller gave just now for the step being entered."""
    keep = {n for n in names if n in given and n in target.collects}
    return {k: (None if k in names and k not in keep else v) for k, v in slots.items()}


def scripted_reply(
    flow: Flow, state: CallState, decision: Decision, reading: Reading, *, reacted: bool = False
) -> str:
    """What the flow says after this turn: acknowledgements, then the next question.
    `reacted`: a generated reply already reacted to the answer."""
    lang = state.lang
    node = flow.nodes[state.node]
    target = flow.nodes[decision.node]
    parts: list[str] = []
    if decision.corrected and decision.stayed != "reread" and flow.changed:
        parts.append(flow.changed[lang])
    for name in decision.refused:
        text = flow.slots[name].out_of_range.get(lang)
        if text:
            parts.append(text)
    if decision.stayed in ("missing", "blocked") and not decision.refused:
        parts += _answer(flow, node, reading, decision, lang)
    moved_on = decision.stayed is None and not decision.transfer
    if moved_on and node.block and flow.acknowledge and not reacted:
        parts.append(flow.acknowledge[lang])
    if decision.stayed is None or decision.stayed == "reread" or decision.transfer:
        parts.append(render(target.say[lang], flow, decision.slots, lang, state.region))
    elif decision.partial_phone and node.partial and decision.stayed == "missing":
        digits = format_digits(decision.partial_phone.lstrip("+"))
        parts.append(node.partial[lang].replace("{digits}", digits))
    else:
        parts.append(
            render((node.reask or node.say)[lang], flow, decision.slots, lang, state.region)
        )
    return " ".join(part for part in parts if part)


def _answer(flow: Flow, node: Node, reading: Reading, decision: Decision, lang: str) -> list[str]:
    """An answer to a question, or the reason for a refusal, before the re-ask."""
    missing = [flow.slots[name] for name in node.collects if decision.slots.get(name) is None]
    explain = next((spec.explain[lang] for spec in missing if spec.explain), "")
    text = normalize(reading.text)
    if reading.cues.question:
        for answer in flow.answers:
            if any(re.search(rf"\b{re.escape(normalize(stem))}", text) for stem in answer.stems):
                return [answer.say[lang]]
        if explain and _WHY.search(text):
            return [explain]
        return [flow.no_answer[lang]] if flow.no_answer else []
    if reading.cues.refusal and explain:
        return [explain]
    return []


def apply_turn(
    flow: Flow,
    state: CallState,
    *,
    turn_id: str,
    text: str,
    decision: Decision,
    reply: str,
    backchannel: str | None,
    now: float,
    history_cap: int,
    assessment: Assessment | None = None,
) -> TurnOutcome:
    """The call after this turn; `reply` is everything the caller hears for it, and
    `assessment` the scoring of the answer given at an interview question."""
    node = flow.nodes[state.node]
    target = flow.nodes[decision.node]
    answers, assessments = dict(state.answers), dict(state.assessments)
    if assessment is not None:
        answers[node.id] = answer_so_far(state, node.id, text)
        assessments[node.id] = assessment.model_dump()
    exchange = Exchange(turn_id=turn_id, node=node.id, user=text, agent=reply)
    stayed = decision.node == node.id
    new_state = state.model_copy(
        update={
            "node": decision.node,
            "slots": decision.slots,
            "partial_phone": decision.partial_phone,
            "failures": decision.failures if stayed else 0,
            "turns": state.turns + 1,
            "node_turns": state.node_turns + 1 if stayed else 0,
            "history": [*state.history, exchange][-history_cap:],
            "last_backchannel": backchannel or state.last_backchannel,
            "answers": answers,
            "assessments": assessments,
            "ended": target.final,
            "end_reason": target.outcome if target.final else None,
            "outcome": target.outcome if target.final else None,
            "transfer_reason": decision.transfer,
            "updated_at": now,
        }
    )
    return TurnOutcome(state=new_state, reply=reply, done=target.final)


def read_for(flow: Flow, state: CallState, text: str, today: date) -> Reading:
    """`text` read at the call's current step."""
    node = flow.nodes[state.node]
    return read_turn(
        flow,
        node,
        text,
        lang=state.lang,
        today=today,
        region=state.region,
        partial_phone=state.partial_phone if "phone" in node.collects else "",
    )


def start_state(
    flow: Flow,
    call_id: str,
    lang: str,
    metadata: dict[str, Any],
    now: float,
    *,
    region: str,
    owner: str = "",
) -> CallState:
    start = flow.nodes[flow.start_node]
    slots = dict.fromkeys(flow.slots)
    return CallState(
        call_id=call_id,
        flow=flow.id,
        lang=lang,
        region=region,
        owner=owner,
        node=start.id,
        greeting=render(start.say[lang], flow, slots, lang, region),
        slots=slots,
        metadata=metadata,
        created_at=now,
        updated_at=now,
    )
