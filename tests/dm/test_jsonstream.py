"""The incremental JSON reader: the reply grows as tokens arrive; truncation is salvaged."""

from __future__ import annotations

import pytest

from dm.jsonstream import StreamedObject

FULL = '{"reply": "Понятно, спасибо \\"за\\" ответ.", "next_node": "q_2", "score": 4}'


def _feed_all(text: str, step: int) -> tuple[StreamedObject, list[str]]:
    stream = StreamedObject("reply")
    deltas = [stream.feed(text[i : i + step]) for i in range(0, len(text), step)]
    return stream, [d for d in deltas if d]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 100])
def test_complete_object_streams_the_reply(step: int) -> None:
    stream, deltas = _feed_all(FULL, step)
    assert "".join(deltas) == 'Понятно, спасибо "за" ответ.'
    assert stream.text == 'Понятно, спасибо "за" ответ.'
    parsed = stream.result()
    assert parsed.complete
    assert parsed.value == {"reply": 'Понятно, спасибо "за" ответ.', "next_node": "q_2", "score": 4}
    if step < len(FULL):
        assert len(deltas) > 1


def test_unicode_escapes_split_across_chunks() -> None:
    stream = StreamedObject("reply")
    pieces = ['{"reply": "\\u041f', "\\u0440", 'и", "next_node": "a"}']
    assert "".join(stream.feed(p) for p in pieces) == "При"


def test_truncated_object_keeps_complete_fields_only() -> None:
    stream, _ = _feed_all(
        '{"reply": "Хорошо.", "next_node": "ask_phone", "slots": {"name": "Мари', 5
    )
    parsed = stream.result()
    assert not parsed.complete
    assert parsed.value == {"reply": "Хорошо.", "next_node": "ask_phone", "slots": {}}


def test_truncated_inside_watched_field() -> None:
    stream, deltas = _feed_all('{"reply": "Спасибо за отв', 4)
    assert "".join(deltas) == "Спасибо за отв"
    parsed = stream.result()
    assert not parsed.complete
    assert parsed.value == {}


@pytest.mark.parametrize("garbage", ["", "hello there", "[1, 2]", '"just a string"', "{{{"])
def test_garbage_is_not_an_object(garbage: str) -> None:
    stream = StreamedObject("reply")
    assert stream.feed(garbage) == ""
    parsed = stream.result()
    assert parsed.value is None or parsed.value == {}
    if garbage in ("hello there", "[1, 2]", '"just a string"'):
        assert parsed.value is None


def test_unwatched_stream_only_parses_at_the_end() -> None:
    stream = StreamedObject(None)
    assert stream.feed('{"next_node": "x", "slots": {}}') == ""
    assert stream.result().value == {"next_node": "x", "slots": {}}


def test_knows_when_the_watched_string_closes() -> None:
    stream = StreamedObject("reply")
    stream.feed('{"reply": "Хорошо')
    assert not stream.field_complete
    stream.feed(', спасибо.", "next_')
    assert stream.field_complete
    assert stream.text == "Хорошо, спасибо."
