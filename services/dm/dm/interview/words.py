"""An answer as words: lower-cased, Russian words with their dictionary form, and where each
word stands in the original text, so every quote can be cut from the candidate's own words."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from functools import cache, lru_cache

import pymorphy3

from dm.extract import extract_integer

# A digit run, or a word that starts with a letter ("boto3", "flake8"): "10x" is 10 and x.
_TOKEN = re.compile(r"[0-9]+|[^\W\d_][^\W_]*(?:['’][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?;:…\n]")
_CYRILLIC = re.compile(r"[а-яё]")
# English contractions: "don't" is "do" + "not", "he's" is "he" ("'s" says nothing we read).
_NOT_SUFFIX = "n't"
_DROPPED_SUFFIXES = ("'s", "'re", "'ve", "'m", "'ll", "'d")


def word_set(words: str) -> frozenset[str]:
    """The space-separated words of a table written as one string."""
    return frozenset(words.split())


# Speech recognition often drops the apostrophe.
_BARE_NEGATIVES = word_set(
    "dont doesnt didnt cant wont isnt wasnt arent werent havent hasnt hadnt wouldnt "
    "shouldnt couldnt aint"
)
NEGATIONS = word_set("not no never nothing none neither nor не нет ни никогда ничего")
# "no, I have five years" and "нет, я писал": a "no" before a pronoun answers, it negates nothing.
_ANSWERING_NO = word_set("no нет")
_PRONOUNS = word_set("i we he she they you я мы он она они вы")
# Words that end one thought and start another: a phrase is never matched across them.
_CLAUSE_BREAKS = word_set("but however though although но а однако хотя зато")
# Hesitations a phrase may have between its words without counting as a gap.
_FILLERS = word_set("uh um er erm hmm ah mm ну э ээ эээ мм ммм")
_EN_NUMBERS = word_set(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred thousand million dozen couple"
)
_RU_NUMBERS = word_set(
    "один два три четыре пять шесть семь восемь девять десять одиннадцать двенадцать "
    "тринадцать четырнадцать пятнадцать шестнадцать семнадцать восемнадцать девятнадцать "
    "двадцать тридцать сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто сто двести "
    "триста четыреста пятьсот тысяча миллион полтора пара десяток"
)


@dataclass(frozen=True, slots=True)
class Word:
    text: str  # lower case, ё read as е, apostrophes ASCII
    lemma: str  # the dictionary form of a Russian word, else `text`
    start: int  # where the word stands in the original text
    end: int
    clause: int  # words of one clause share this number
    sentence: int
    is_negation: bool = False

    @property
    def is_number(self) -> bool:
        return self.text.isdigit() or self.text in _EN_NUMBERS or self.lemma in _RU_NUMBERS

    @property
    def value(self) -> int | None:
        """The number this one word says ("шести" 6, "twenty" 20), or None."""
        return extract_integer(self.text, "ru") if self.is_number else None


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower().replace("ё", "е").replace("’", "'")


@cache
def _morph() -> pymorphy3.MorphAnalyzer:
    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=16384)
def lemma(word: str) -> str:
    """The dictionary form of a normalised Russian word (other words as they are)."""
    if not _CYRILLIC.search(word):
        return word
    return str(_morph().parse(word)[0].normal_form).replace("ё", "е")


def split_token(token: str) -> list[str]:
    """A normalised token as the words it stands for ("don't" -> "do", "not")."""
    if token.endswith(_NOT_SUFFIX) and len(token) > len(_NOT_SUFFIX):
        return [token[: -len(_NOT_SUFFIX)], "not"]
    if token in _BARE_NEGATIVES:
        return [token[:-2], "not"]
    for suffix in _DROPPED_SUFFIXES:
        if token.endswith(suffix) and len(token) > len(suffix):
            return [token[: -len(suffix)]]
    return [token]


def words(text: str, *, keep_fillers: bool = False) -> list[Word]:
    """The words of `text` in order; fillers ("uh", "ну") are left out unless kept."""
    found: list[Word] = []
    clause = sentence = 0
    last_end = 0
    for match in _TOKEN.finditer(text):
        if _SENTENCE_END.search(text, last_end, match.start()):
            clause, sentence = clause + 1, sentence + 1
        last_end = match.end()
        for part in split_token(normalize(match.group())):
            if part in _CLAUSE_BREAKS:
                clause += 1
            if part in _FILLERS and not keep_fillers:
                continue
            found.append(Word(part, lemma(part), match.start(), match.end(), clause, sentence))
    return [
        replace(word, is_negation=_negates(word, found[i + 1] if i + 1 < len(found) else None))
        for i, word in enumerate(found)
    ]


def _negates(word: Word, following: Word | None) -> bool:
    if word.text not in NEGATIONS:
        return False
    if following is None or word.text not in _ANSWERING_NO:
        return True
    return following.text not in _PRONOUNS
