"""Incremental detokenisation: whole UTF-8 characters only, stop strings across pieces."""

from __future__ import annotations

import pytest

from llm_local.embedded.detokenizer import Detokenizer


def feed_all(detokenizer: Detokenizer, pieces: list[bytes]) -> tuple[list[str], bool]:
    deltas = []
    for piece in pieces:
        text, stopped = detokenizer.feed(piece)
        deltas.append(text)
        if stopped:
            return deltas, True
    deltas.append(detokenizer.flush())
    return deltas, False


@pytest.mark.parametrize("text", ["Привет, мир", "эмодзи 😀👍🏽 и Ё", "mixed ascii"])
def test_bytes_split_anywhere_give_whole_characters(text: str) -> None:
    raw = text.encode()
    pieces = [raw[i : i + 1] for i in range(len(raw))]

    deltas, stopped = feed_all(Detokenizer(), pieces)

    assert not stopped
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)


def test_a_stop_string_spanning_pieces_cuts_before_it() -> None:
    deltas, stopped = feed_all(Detokenizer(["</end>"]), [b"hello </", b"en", b"d> tail"])

    assert stopped
    assert "".join(deltas) == "hello "


def test_text_that_only_looked_like_a_stop_string_is_released() -> None:
    detokenizer = Detokenizer(["STOP"])

    assert detokenizer.feed(b"ST") == ("", False)
    assert detokenizer.feed(b"ill going") == ("STill going", False)
    assert detokenizer.flush() == ""


def test_held_back_text_comes_out_at_the_end() -> None:
    detokenizer = Detokenizer(["STOP"])

    assert detokenizer.feed(b"end ST") == ("end ", False)
    assert detokenizer.flush() == "ST"


def test_the_earliest_of_several_stop_strings_wins() -> None:
    deltas, stopped = feed_all(Detokenizer(["b", "xyz"]), [b"axyzb"])

    assert stopped
    assert deltas == ["a"]


def test_an_unfinished_character_at_the_end_becomes_a_replacement() -> None:
    detokenizer = Detokenizer()

    assert detokenizer.feed("д".encode()[:1]) == ("", False)
    assert detokenizer.flush() == "\ufffd"
