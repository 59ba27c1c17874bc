"""The turn's pure logic: reading the words, the LLM's proposal, the move, the reply."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from dm.engine import (
    NO_PROPOSAL,
    Decision,
    Proposal,
    apply_turn,
    decide,
    join_reply,
    propose,
    read_for,
    scripted_reply,
    start_state,
)
from dm.flows import Flow, load_flows
from dm.render import render
from dm.schema import build_turn_schema
from dm.state import CallState

TODAY = date(2027, 3, 10)  # a Wednesday


@pytest.fixture(scope="module")
def flows() -> dict[str, Flow]:
    return load_flows()


@pytest.fixture(scope="module")
def booking(flows: dict[str, Flow]) -> Flow:
    return flows["booking_mri"]


@pytest.fixture(scope="module")
def interview(flows: dict[str, Flow]) -> Flow:
    return flows["interview_python_dev"]


ALL_DETAILS = {
    "name": "Мария",
    "phone": "+79161234567",
    "exam": "mri_knee",
    "date": "2027-03-11",
    "time": "15:00",
}


def state_at(flow: Flow, node: str, lang: str = "ru", **slots: Any) -> CallState:
    state = start_state(flow, "call-1", lang, {}, 1000.0, region="RU" if lang == "ru" else "US")
    return state.model_copy(update={"node": node, "slots": {**state.slots, **slots}})


def turn(
    flow: Flow, state: CallState, text: str, llm: dict[str, Any] | None = None
) -> tuple[Decision, str]:
    """The decision and the scripted reply for `text` said at the state's node."""
    reading = read_for(flow, state, text, TODAY)
    proposal = NO_PROPOSAL
    if llm is not None:
        node = flow.nodes[state.node]
        schema = build_turn_schema(flow, node, state.lang, generate=False, max_tokens=96)
        proposal = propose(flow, node, schema, llm, reading)
    decision = decide(flow, state, reading, proposal)
    return decision, scripted_reply(flow, state, decision, reading)


# What the LLM may add


def test_a_grounded_name_from_the_llm_fills_the_step(booking: Flow) -> None:
    state = state_at(booking, "ask_name")
    decision, _ = turn(booking, state, "ну это... Сайида", {"slots": {"name": "Сайида"}})
    assert decision.slots["name"] == "Сайида"


@pytest.mark.parametrize("hallucination", ["мария_мария_мария", "Мария Мария Мария", "Анна"])
def test_an_llm_name_not_in_the_callers_words_is_refused(booking: Flow, hallucination: str) -> None:
    state = state_at(booking, "ask_name")
    decision, _ = turn(booking, state, "алло?", {"slots": {"name": hallucination}})
    assert decision.slots["name"] is None


def test_an_llm_phone_not_in_the_callers_words_is_refused(booking: Flow) -> None:
    state = state_at(booking, "ask_phone", name="Мария")
    decision, _ = turn(booking, state, "не помню", {"slots": {"phone": "+79990001122"}})
    assert decision.slots["phone"] is None


def test_yes_no_comes_from_the_caller_never_the_llm(booking: Flow) -> None:
    state = state_at(booking, "confirm", **ALL_DETAILS)
    decision, _ = turn(booking, state, "подождите", {"slots": {"confirmed": True}})
    assert decision.node == "confirm"
    decision, _ = turn(booking, state, "да, всё верно", {"slots": {"confirmed": False}})
    assert decision.node == "done"


def test_the_llm_cannot_move_the_call_where_the_graph_forbids(booking: Flow) -> None:
    state = state_at(booking, "ask_name")
    decision, _ = turn(booking, state, "Мария, запишите меня сразу", {"next_node": "done"})
    assert decision.node == "ask_phone"


# Slot discipline


def test_a_slot_not_asked_for_takes_only_an_explicit_value(booking: Flow) -> None:
    state = state_at(booking, "ask_phone", name="Мария")
    decision, _ = turn(booking, state, "пятнадцать")  # a bare number: not a time or a date
    assert decision.slots["time"] is None
    assert decision.slots["date"] is None
    decision, _ = turn(booking, state, "8 916 123 45 67, на завтра в три")
    assert decision.slots["date"] == "2027-03-11"
    assert decision.slots["time"] == "15:00"
    assert decision.node == "ask_exam"


def test_a_filled_slot_changes_only_when_the_caller_corrects_it(booking: Flow) -> None:
    state = state_at(booking, "ask_time", name="Мария", phone="+79161234567", exam="mri_knee",
                     date="2027-03-15")  # fmt: skip
    decision, _ = turn(booking, state, "в три, и ещё во вторник")
    assert decision.slots["date"] == "2027-03-15"
    decision, reply = turn(booking, state, "ой нет, давайте лучше во вторник")
    assert decision.slots["date"] == "2027-03-16"
    assert decision.corrected == ("date",)
    assert reply.startswith("Хорошо, исправила.")


def test_the_name_stays_when_a_later_answer_looks_like_one(booking: Flow) -> None:
    state = state_at(booking, "ask_date", "en", name="Maria", phone="+14155550134",
                     exam="mri_knee")  # fmt: skip
    decision, _ = turn(booking, state, "next friday")
    assert decision.slots["name"] == "Maria"
    assert decision.slots["date"] == "2027-03-12"


def test_a_surname_correction_keeps_the_first_name(booking: Flow) -> None:
    state = state_at(booking, "ask_phone", "en", name="Lisa Thompson")
    decision, _ = turn(booking, state, "sorry, my last name is thomson, without the p")
    assert decision.slots["name"] == "Lisa Thomson"
    state = state_at(booking, "ask_exam", name="Петренко Светлана", phone="+79161234567")
    decision, _ = turn(booking, state, "ой, не петренко, а петрова")
    assert decision.slots["name"] == "Петрова Светлана"


# Moves


def test_answered_steps_are_skipped(booking: Flow) -> None:
    state = state_at(booking, "ask_name")
    decision, reply = turn(booking, state, "меня зовут Мария, 8 916 123 45 67, колено, завтра в 3")
    assert decision.node == "confirm"
    assert reply.startswith("Проверим. Мария, телефон 8 916 123-45-67")


def test_confirm_yes_and_no(booking: Flow) -> None:
    state = state_at(booking, "confirm", **ALL_DETAILS)
    assert turn(booking, state, "да")[0].node == "done"
    assert turn(booking, state, "нет")[0].node == "ask_change"


def test_naming_what_is_wrong_at_the_readback_goes_to_its_step(booking: Flow) -> None:
    state = state_at(booking, "confirm", **ALL_DETAILS)
    decision, _ = turn(booking, state, "нет, дата неправильная")
    assert decision.node == "ask_date"
    assert decision.slots["date"] is None
    assert decision.slots["time"] == "15:00"


def test_a_new_value_at_the_readback_rereads(booking: Flow) -> None:
    state = state_at(booking, "confirm", "en", **ALL_DETAILS)
    decision, reply = turn(booking, state, "no its not three its four")
    assert (decision.node, decision.stayed) == ("confirm", "reread")
    assert decision.slots["time"] == "16:00"
    assert "at 4 pm" in reply


def test_a_new_value_at_ask_change_goes_back_to_the_readback(booking: Flow) -> None:
    state = state_at(booking, "ask_change", **ALL_DETAILS, confirmed=False)
    decision, reply = turn(booking, state, "время, давайте в пять")
    assert decision.node == "confirm"
    assert decision.slots["time"] == "17:00"
    assert reply.startswith("Проверим.")


def test_asking_for_a_person_hands_the_call_over(booking: Flow) -> None:
    state = state_at(booking, "ask_phone", name="Мария")
    decision, reply = turn(booking, state, "позовите администратора")
    assert (decision.node, decision.transfer) == ("transfer", "caller_asked")
    assert reply.startswith("Соединяю вас с администратором")


def test_failed_asks_end_in_a_transfer_not_a_loop(booking: Flow) -> None:
    state = state_at(booking, "ask_phone", name="Мария")
    for failures in (1, 2):
        decision, _ = turn(booking, state, "алло?")
        assert (decision.node, decision.failures) == ("ask_phone", failures)
        state = state.model_copy(update={"failures": decision.failures})
    decision, _ = turn(booking, state, "алло?")
    assert (decision.node, decision.transfer) == ("transfer", "not_understood")


def test_part_of_a_number_is_progress_not_a_failure(booking: Flow) -> None:
    state = state_at(booking, "ask_phone", name="Мария", exam="mri_knee")
    decision, reply = turn(booking, state, "восемь девятьсот шестнадцать")
    assert (decision.failures, decision.partial_phone) == (0, "8916")
    assert reply == "Записала 891 6. Продиктуйте, пожалуйста, остальные цифры."
    state = state.model_copy(update={"partial_phone": decision.partial_phone})
    decision, _ = turn(booking, state, "сто двадцать три сорок пять шестьдесят семь")
    assert decision.slots["phone"] == "+79161234567"
    assert decision.node == "ask_date"


def test_an_out_of_hours_time_is_refused_with_the_reason(booking: Flow) -> None:
    state = state_at(booking, "ask_time", **{k: v for k, v in ALL_DETAILS.items() if k != "time"})
    decision, reply = turn(booking, state, "в девять вечера")
    assert decision.node == "ask_time"
    assert decision.refused == {"time": "closed"}
    assert reply.startswith("В это время мы закрыты")


def test_a_question_is_answered_before_the_reask(booking: Flow) -> None:
    state = state_at(booking, "ask_exam", "en", name="Maria", phone="+14155550134")
    _, reply = turn(booking, state, "how much does it cost?")
    assert reply.startswith("The price depends on the exam")
    assert reply.endswith("Which part of the body should we scan?")
    state = state_at(booking, "ask_phone", "en", name="Maria")
    _, reply = turn(booking, state, "why do you need my number")
    assert reply.startswith("We need it to confirm the booking")


def test_interview_follow_up_is_limited(interview: Flow) -> None:
    state = state_at(interview, "q_concurrency")
    first = decide(
        interview, state, read_for(interview, state, "хм", TODAY), Proposal({}, "q_concurrency")
    )
    assert (first.node, first.stayed) == ("q_concurrency", "followup")
    state = state.model_copy(update={"node_turns": 1})
    second = decide(
        interview, state, read_for(interview, state, "хм", TODAY), Proposal({}, "q_concurrency")
    )
    assert second.node == "q_testing"


# Whole turns


def test_start_state(booking: Flow) -> None:
    state = start_state(booking, "call-1", "en", {}, 1000.0, region="GB", owner="k1")
    assert state.node == "ask_name"
    assert (state.region, state.owner) == ("GB", "k1")
    assert state.greeting.startswith("Hello!")
    assert set(state.slots) == set(booking.slots)


def test_apply_turn_records_the_move_and_the_outcome(booking: Flow) -> None:
    state = state_at(booking, "confirm", **ALL_DETAILS)
    decision, reply = turn(booking, state, "да")
    outcome = apply_turn(
        booking,
        state,
        turn_id="t9",
        text="да",
        decision=decision,
        reply=reply,
        backchannel=None,
        now=1001.0,
        history_cap=8,
    )
    assert outcome.done
    assert outcome.state.ended
    assert outcome.state.outcome == "completed"
    assert "МРТ коленного сустава" in outcome.reply


def test_history_is_capped(booking: Flow) -> None:
    state = state_at(booking, "ask_name")
    for number in range(5):
        decision, reply = turn(booking, state, "...")
        state = apply_turn(
            booking,
            state,
            turn_id=f"t{number}",
            text="...",
            decision=decision,
            reply=reply,
            backchannel=None,
            now=1001.0,
            history_cap=2,
        ).state
        if state.ended:
            break
    assert [ex.turn_id for ex in state.history] == ["t1", "t2"]
    assert state.turns == 3  # the third failed ask handed the call over
    assert state.outcome == "transfer"


def test_render_drops_sentences_with_unknown_values(booking: Flow, interview: Flow) -> None:
    text = interview.nodes["q_experience"].say["en"]
    rendered = render(text, interview, {"candidate_name": None}, "en")
    assert rendered.startswith("How many years")
    assert "{" not in rendered
    readback = render(booking.nodes["confirm"].say["en"], booking, ALL_DETAILS, "en", "US")
    assert "+7 916 123-45-67" in readback
    assert "a knee MRI" in readback
    assert "March 11" in readback


def test_join_reply_keeps_the_spoken_prefix() -> None:
    assert join_reply("Ok. ", "Next?") == "Ok. Next?"
    assert join_reply("Ok.", "Next?") == "Ok. Next?"
    assert join_reply("", "Next?") == "Next?"
    assert join_reply("Ok.", "") == "Ok."
