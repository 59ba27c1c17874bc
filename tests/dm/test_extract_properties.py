"""Every reader of caller words, on any text: it never raises and stays fast.

Hypothesis draws text of every kind (unicode digits "²①₂", control characters, emoji,
Cyrillic and Latin words, digits, punctuation), the length the contract allows. The
deadline is generous (a CI machine is slow and shared); what it catches is a reader
that raises, or one that goes quadratic on a long utterance.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dm.engine import start_state
from dm.extract import (
    extract_date,
    extract_integer,
    extract_name,
    extract_time,
    extract_yes_no,
    match_enum,
)
from dm.extract.cues import read_cues
from dm.extract.names import corrected_name, grounded, read_name
from dm.extract.phone import format_phone, read_phone, replace_last_digits
from dm.flows import load_flows
from dm.reading import read_turn
from svckit.wire import MAX_TEXT_CHARS

FLOWS = load_flows()
TODAY = date(2027, 3, 10)
PHRASES = [
    "восемь девятьсот шестнадцать сто двадцать три нуля ноль семь не а нет",
    "меня зовут мария иванова петровна завтра пятницу марта в три часа дня",
    "oh double triple nine hundred my name is it's not sorry wait at half past",
    "tomorrow friday next week the fifteenth pm am noon knee back operator",
    "² ① ₂ ٣ 𝟕 \x00 \u200b \n + - ( ) : . , ? ! … 😀 _ ' 415 555 0134 8 916",
]
WORDS = [word for phrase in PHRASES for word in phrase.split(" ")]
SAY = st.one_of(
    st.text(max_size=MAX_TEXT_CHARS),
    st.lists(st.sampled_from(WORDS), max_size=400).map(" ".join),
)
PROPERTIES = settings(
    max_examples=max(150, settings.default.max_examples),
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTIES
@given(
    text=SAY, region=st.sampled_from(["RU", "US", "GB", "DE", "ZZ"]), partial=st.text(max_size=20)
)
def test_phones(text: str, region: str, partial: str) -> None:
    found = read_phone(text, region, partial)
    if found.e164 is not None:
        assert found.e164.startswith("+")
        assert format_phone(found.e164, region)
        replace_last_digits(found.e164, "68", region)


@PROPERTIES
@given(text=SAY, bare=st.booleans())
def test_names(text: str, bare: bool) -> None:
    found = read_name(text, bare=bare)
    if found is not None:
        assert 1 <= len(found.value.split()) <= 4
        assert grounded(found.value, text) or found.surname_only or "-" in found.value
    extract_name(text)
    corrected_name("Мария Иванова", text)


@PROPERTIES
@given(text=SAY, lang=st.sampled_from(["ru", "en"]), asked=st.booleans())
def test_dates_times_numbers_yes_no(text: str, lang: str, asked: bool) -> None:
    extract_date(text, lang, TODAY)
    extract_time(text, lang, asked=asked)
    extract_integer(text, lang)
    extract_yes_no(text, lang)
    read_cues(text)
    match_enum(text, FLOWS["booking_mri"].slots["exam"].values)


@PROPERTIES
@given(
    text=SAY,
    node=st.sampled_from(sorted(FLOWS["booking_mri"].nodes)),
    lang=st.sampled_from(["ru", "en"]),
)
def test_a_whole_reading_at_any_step(text: str, node: str, lang: str) -> None:
    flow = FLOWS["booking_mri"]
    state = start_state(flow, "c", lang, {}, 0.0, region="RU")
    reading = read_turn(flow, flow.nodes[node], text, lang=lang, today=TODAY, region="RU")
    assert set(reading.values) <= set(flow.slots)
    assert state.node in flow.nodes
