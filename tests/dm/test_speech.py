"""Reply pieces for TTS and backchannels."""

from __future__ import annotations

import pytest

from dm.backchannel import BACKCHANNELS, choose_backchannel, strip_echo
from dm.reply_guard import in_language, is_parroting, recites, word_runs
from dm.speakable import SpeakableChunker, split_sentences


def test_chunker_cuts_at_sentences_and_words_and_loses_nothing() -> None:
    text = "Понятно. Расскажите, пожалуйста, подробнее о том, как вы пишете тесты для сервисов"
    chunker = SpeakableChunker()
    pieces = []
    for char in text:
        pieces += chunker.feed(char)
    pieces.append(chunker.flush())
    assert "".join(pieces) == text
    assert pieces[0] == "Понятно. "
    assert all(p.endswith(" ") for p in pieces[:-1])
    assert len(pieces) >= 3


def test_chunker_waits_for_enough_words() -> None:
    chunker = SpeakableChunker(min_words=4)
    assert chunker.feed("one two ") == []
    assert chunker.feed("three four five") == ["one two three four "]
    assert chunker.flush() == "five"


def test_split_sentences() -> None:
    text = "Проверим. Мария, телефон +7 916 123-45-67. Всё верно?"
    pieces = split_sentences(text)
    assert pieces == ["Проверим. ", "Мария, телефон +7 916 123-45-67. ", "Всё верно?"]
    assert split_sentences("") == []


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_backchannel_never_repeats_and_is_stable(lang: str) -> None:
    last = None
    for turn in range(50):
        chosen = choose_backchannel(lang, "call-1", turn, last)
        assert chosen in BACKCHANNELS[lang]
        assert chosen != last
        assert chosen == choose_backchannel(lang, "call-1", turn, last)
        last = chosen


def test_backchannel_language() -> None:
    assert choose_backchannel("ru", "c", 0, None) in BACKCHANNELS["ru"]
    assert choose_backchannel("de", "c", 0, None) in BACKCHANNELS["en"]


@pytest.mark.parametrize(
    ("reply", "backchannel", "expected"),
    [
        ("Понятно, спасибо за ответ. ", "Понятно.", "Спасибо за ответ. "),
        ("Okay, thanks. ", "Okay.", "Thanks. "),
        ("Спасибо. ", "Понятно.", "Спасибо. "),
        ("Понятно.", "Понятно.", "Понятно."),
        ("Got it all. ", None, "Got it all. "),
        ("One more thing. ", "One moment.", "One more thing. "),
        ("One moment, please. ", "One moment.", "Please. "),
    ],
)
def test_strip_echo(reply: str, backchannel: str | None, expected: str) -> None:
    assert strip_echo(reply, backchannel) == expected


@pytest.mark.parametrize(
    ("reply", "sources", "parrots"),
    [
        ("Я пишу юнит-тесты на pytest", ("Я пишу юнит-тесты на pytest, иногда e2e",), True),
        ("How the candidate tests code.", ("caller", "How the candidate tests code."), True),
        ("Спасибо, подробный ответ.", ("Я пишу юнит-тесты на pytest",), False),
        ("Thanks, that helps.", ("I write pytest tests",), False),
        ("...", ("anything",), True),
    ],
)
def test_parroting_replies(reply: str, sources: tuple[str, ...], parrots: bool) -> None:
    assert is_parroting(reply, *sources) is parrots


INSTRUCTIONS = "You are a polite HR assistant screening a candidate for a Python developer job."


@pytest.mark.parametrize(
    ("reply", "recital"),
    [
        ("You're a polite HR assistant, I'm glad to have you here.", True),
        ("Screening a candidate for a Python job is fun.", True),
        ("Thanks, a polite answer and a clear one.", False),
        ("Python developer job, noted.", False),  # three words in a row: not yet a recital
    ],
)
def test_recited_instructions(reply: str, recital: bool) -> None:
    assert recites(reply, word_runs(INSTRUCTIONS)) is recital


def test_sentence_only_chunker_waits_for_sentence_ends() -> None:
    chunker = SpeakableChunker(min_words=None)
    assert chunker.feed("one two three four five six ") == []
    assert chunker.feed("seven. Eight") == ["one two three four five six seven. "]
    assert chunker.feed(" nine") == []
    assert chunker.feed(". ") == ["Eight nine. "]
    assert chunker.flush() == ""


@pytest.mark.parametrize(
    ("reply", "lang", "expected"),
    [
        ("Спасибо, понятно.", "ru", True),
        ("Hello, I'm Alex. I'm here to help", "ru", False),
        ("Thanks, that helps.", "en", True),
        ("Спасибо.", "en", False),
        ("pytest — хороший выбор.", "ru", True),
        ("...", "ru", True),
    ],
)
def test_reply_language(reply: str, lang: str, expected: bool) -> None:
    assert in_language(reply, lang) is expected
