"""One turn as a state machine with no I/O: the caller's words in, actions out.

`TurnCore.start()` reads the utterance and either decides at once (the rules path: the
words fill what the step asks and nothing needs interpretation) or asks for an LLM call.
The shell (`dm.turns`) performs the actions, feeds the LLM's streamed text to
`on_llm_text` and its end to `on_llm_done`, and reports a barge-in or the deadline. The
core holds what a turn must get right whatever the transport: the reply guard (a generated
reply that parrots, recites its instructions or switches language is not spoken), the
fallback when the LLM fails, and the assembly of the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from dm.backchannel import choose_backchannel, strip_echo
from dm.engine import (
    NO_PROPOSAL,
    Decision,
    Proposal,
    TurnOutcome,
    answer_so_far,
    apply_turn,
    decide,
    join_reply,
    propose,
    read_for,
    scripted_reply,
)
from dm.flows import Flow
from dm.interview.judge import judge_messages, judge_schema, parse_judgement
from dm.interview.promises import is_injection, makes_promise
from dm.interview.rubric import Assessment
from dm.interview.screening import (
    add_contradiction,
    assess_question,
    question_text,
    scored_questions,
)
from dm.jsonstream import StreamedObject
from dm.prompt import build_messages
from dm.reading import Reading
from dm.reply_guard import in_language, is_parroting, recites
from dm.schema import TurnSchema, node_red_flags
from dm.settings import Scoring
from dm.speakable import SpeakableChunker, split_sentences
from dm.state import CallState, Interruption
from svckit.wire import FallbackReason, UnderstoodBy

# Utterances longer than this go to the LLM even when the rules read every slot: a long
# turn may say something the readers do not look for.
RULES_MAX_WORDS = 20


@dataclass(frozen=True, slots=True)
class Speak:
    """A piece of speech to send now: the backchannel, or the next piece of the reply."""

    kind: str  # "backchannel" or "reply.delta"
    text: str


@dataclass(frozen=True, slots=True)
class AskLlm:
    messages: list[dict[str, str]]
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Judge:
    """Ask the LLM, at temperature 0, to score an interview answer (DM_SCORING=llm)."""

    messages: list[dict[str, str]]
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finish:
    """The turn is decided: commit `outcome` and report it."""

    outcome: TurnOutcome
    backchannel: str | None
    understood_by: UnderstoodBy
    fallback_reason: FallbackReason | None
    transfer_reason: str | None


Action = Speak | AskLlm | Judge | Finish


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """What a turn needs to know beyond the call itself, fixed per flow, node and language."""

    flow: Flow
    schema: TurnSchema
    system: str
    instruction_runs: frozenset[tuple[str, ...]]
    generate: bool
    rules: bool
    scoring: Scoring
    prompt_history: int
    history_cap: int


@dataclass
class TurnCore:
    plan: TurnPlan
    state: CallState
    interruptions: Mapping[str, Interruption]
    turn_id: str
    text: str
    today: date
    now: float
    reading: Reading = field(init=False)
    backchannel: str | None = None
    spoken: list[str] = field(default_factory=list)  # reply pieces sent so far
    _parser: StreamedObject = field(init=False)
    _chunker: SpeakableChunker = field(default_factory=lambda: SpeakableChunker(min_words=None))
    _refused: bool = False  # the generated reply failed the guard: no more of it is spoken
    _reply_ended: bool = False
    _pending: tuple[Decision, str, UnderstoodBy, FallbackReason | None] | None = None

    def __post_init__(self) -> None:
        self.reading = read_for(self.plan.flow, self.state, self.text, self.today)
        self._parser = StreamedObject("reply" if self.plan.schema.has_reply else None)

    def start(self) -> list[Action]:
        """Decide now from the words, or say a backchannel and ask the LLM."""
        if self._rules_decide():
            decision = decide(self.plan.flow, self.state, self.reading, NO_PROPOSAL)
            return self._finish(decision, NO_PROPOSAL, "rules", None)
        flow = self.plan.flow
        node = flow.nodes[self.state.node]
        self.backchannel = choose_backchannel(
            self.state.lang, self.state.call_id, self.state.turns, self.state.last_backchannel
        )
        messages = build_messages(
            self.plan.system,
            node,
            self.state,
            self.interruptions,
            self.plan.schema.moves,
            self.text,
            self.plan.prompt_history,
        )
        return [Speak("backchannel", self.backchannel), AskLlm(messages, self.plan.schema.schema)]

    def on_llm_text(self, text: str) -> list[Action]:
        """More of the LLM's streamed object: speak the reply's whole sentences as they come."""
        delta = self._parser.feed(text)
        pieces = self._chunker.feed(delta) if delta else []
        actions = self._speak(pieces)
        if self._parser.field_complete:
            actions += self._end_reply()
        return actions

    def on_llm_done(self, failure: FallbackReason | None) -> list[Action]:
        """The LLM call ended (failure None: it completed). Decide and finish the turn."""
        proposal = NO_PROPOSAL
        if failure is None:
            parsed = self._parser.result()
            if parsed.value is None or "next_node" not in parsed.value:
                failure = "invalid_output"
            else:
                flow = self.plan.flow
                node = flow.nodes[self.state.node]
                proposal = propose(flow, node, self.plan.schema, parsed.value, self.reading)
        actions = self._end_reply() if failure is None else []
        if failure is not None:
            self._refused = True  # a reply cut short is not finished with flow text
        decision = decide(self.plan.flow, self.state, self.reading, proposal)
        return actions + self._finish(decision, proposal, "llm", failure)

    def _rules_decide(self) -> bool:
        """The words settle the turn: every slot the step asks for is read (or a person
        was asked for), and nothing calls for interpretation."""
        if not self.plan.rules:
            return False
        cues = self.reading.cues
        if cues.person:
            return True
        node = self.plan.flow.nodes[self.state.node]
        if not node.collects:
            # A step that collects nothing (an interview question) with scripted words: the
            # move is the graph's and the scoring the rubric's; an LLM call changes nothing.
            return not self.plan.generate
        if cues.nothing_said:
            return True  # nothing to read: the step's question again
        if not cues.plain or cues.words > RULES_MAX_WORDS or self.reading.refused:
            return False
        return all(name in self.reading.values for name in node.collects)

    def on_judged(self, judgement: Mapping[str, Any] | None) -> list[Action]:
        """The judge's answer (None: it failed, and the rubric scores instead)."""
        assert self._pending is not None
        decision, reply, understood_by, failure = self._pending
        flow, node = self.plan.flow, self.plan.flow.nodes[self.state.node]
        answer = answer_so_far(self.state, node.id, self.text)
        if judgement is None:
            assessment = assess_question(flow, node, self.state.lang, answer, self._earlier())
        else:
            judged = parse_judgement(node.id, judgement, answer, node_red_flags(flow, node))
            assessment = add_contradiction(flow, node, judged, answer, self._earlier())
        return [self._finished(decision, reply, understood_by, failure, assessment)]

    def _speak(self, pieces: list[str]) -> list[Action]:
        """Reply pieces to send: the first loses a repeat of the backchannel; a reply that
        starts by parroting or in another language is not sent at all, one that recites
        its instructions or promises what the flow does not is cut where it starts to,
        and none is generated for words that try to steer the agent."""
        pieces = [piece for piece in pieces if piece]
        if self._refused or not pieces:
            return []
        if is_injection(self.text):
            self._refused = True
            return []
        if not self.spoken:
            pieces[0] = strip_echo(pieces[0], self.backchannel)
            first = pieces[0]
            node = self.plan.flow.nodes[self.state.node]
            previous = self.state.history[-1].agent if self.state.history else self.state.greeting
            if is_parroting(first, self.text, previous, node.goal) or not in_language(
                first, self.state.lang
            ):
                self._refused = True
                return []
        actions: list[Action] = []
        for piece in pieces:
            if recites(piece, self.plan.instruction_runs) or makes_promise(piece, self.state.lang):
                self._refused = True
                break
            self.spoken.append(piece)
            actions.append(Speak("reply.delta", piece))
        return actions

    def _end_reply(self) -> list[Action]:
        """The reply string closed: speak its last sentence, unless the length bound cut it."""
        if self._reply_ended:
            return []
        self._reply_ended = True
        rest = self._chunker.flush().rstrip()
        if len(self._parser.text) < self.plan.schema.reply_chars:
            return self._speak([rest])
        return []

    def _finish(
        self,
        decision: Decision,
        proposal: Proposal,
        understood_by: UnderstoodBy,
        failure: FallbackReason | None,
    ) -> list[Action]:
        """Speak the rest of the reply at once, then score an interview answer, then finish."""
        del proposal  # what it proposed is in `decision`
        flow = self.plan.flow
        llm_words = "".join(self.spoken)
        suffix = scripted_reply(
            flow, self.state, decision, self.reading, reacted=bool(llm_words.strip())
        )
        if decision.stayed == "followup" and llm_words.strip():
            suffix = ""
        reply = join_reply(llm_words, suffix)
        actions: list[Action] = [
            Speak("reply.delta", piece) for piece in split_sentences(reply[len(llm_words) :])
        ]
        node = flow.nodes[self.state.node]
        if not (node.block and node.rubric) or decision.transfer:
            return [*actions, self._finished(decision, reply, understood_by, failure, None)]
        if self.plan.scoring == "llm":
            self._pending = (decision, reply, understood_by, failure)
            answer = answer_so_far(self.state, node.id, self.text)
            flags = {f: flow.red_flags[f].description for f in node_red_flags(flow, node)}
            messages = judge_messages(
                question_text(node, self.state.lang), node.rubric, flags, answer, self.state.lang
            )
            return [*actions, Judge(messages, judge_schema(node_red_flags(flow, node)))]
        answer = answer_so_far(self.state, node.id, self.text)
        assessment = assess_question(flow, node, self.state.lang, answer, self._earlier())
        return [*actions, self._finished(decision, reply, understood_by, failure, assessment)]

    def _earlier(self) -> list[str]:
        """The candidate's answers to the questions before this one, in the flow's order."""
        earlier = []
        for node in scored_questions(self.plan.flow):
            if node.id == self.state.node:
                break
            if node.id in self.state.answers:
                earlier.append(self.state.answers[node.id])
        return earlier

    def _finished(
        self,
        decision: Decision,
        reply: str,
        understood_by: UnderstoodBy,
        failure: FallbackReason | None,
        assessment: Assessment | None,
    ) -> Finish:
        outcome = apply_turn(
            self.plan.flow,
            self.state,
            turn_id=self.turn_id,
            text=self.text,
            decision=decision,
            reply=reply,
            backchannel=self.backchannel,
            now=self.now,
            history_cap=self.plan.history_cap,
            assessment=assessment,
        )
        return Finish(outcome, self.backchannel, understood_by, failure, decision.transfer)
