"""A question's rubric: the evidence that earns each score level, in ru and en, and the
explicit statements that raise a red flag; and the deterministic scoring of one answer.

Every score and flag comes with the candidate's own words. An answer with nothing the
rubric recognises (silence, noise, evasion, a question back, another topic) is "not
answered": no score, never a red flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from dm.interview.evidence import overlaps, quotes
from dm.interview.injection import without_injections
from dm.interview.phrases import Found, Phrase, PhraseIndex, Span, compile_phrase
from dm.interview.words import Word, word_set, words

# "never used hypothesis" is no evidence of hypothesis: see `negated`.
NEGATION_REACH_BEFORE = 2
NEGATION_REACH_AFTER = 2  # "интеграционные тесты не пишем", "hypothesis isn't something i use"
_NOT_NEGATING = word_set("only только just")  # "not only", "не только"
_ALTERNATIVES = word_set("or nor или ни")
# Words a negation reaches across without counting: "not really a tdd person".
_SOFTENERS = word_set(
    "a an the really very quite that so too particularly especially actually "
    "очень особо совсем так уж"
)


class _RubricModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phrases(_RubricModel):
    """Phrases to find in an answer. Both lists apply to any answer: Russian speech carries
    English tool names, and an English phrase never matches Cyrillic words."""

    en: list[str] = Field(default_factory=list)
    ru: list[str] = Field(default_factory=list)
    # Phrases that cancel a match they overlap: "tests first" is not "no tests".
    unless: list[str] = Field(default_factory=list)
    _find: tuple[Phrase, ...] = PrivateAttr(default=())
    _unless: tuple[Phrase, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _compile(self) -> Self:
        self._find = tuple(compile_phrase(p) for p in [*self.en, *self.ru])
        self._unless = tuple(compile_phrase(p) for p in self.unless)
        return self

    @property
    def compiled(self) -> tuple[Phrase, ...]:
        return (*self._find, *self._unless)

    def spans(self, found: Found, said: Sequence[Word], *, affirmed: bool = False) -> list[Span]:
        """Where in `said` (read as `found`) any phrase is said, in order, less the matches an
        `unless` phrase overlaps; `affirmed`: less those said with "not" too (a phrase with
        its own `<neg>` aside)."""
        cancelled = [span for phrase in self._unless for span in found.get(phrase.key, ())]
        kept = {
            span
            for phrase in self._find
            for span in found.get(phrase.key, ())
            if not (affirmed and not phrase.says_not and negated(said, span))
        }
        return sorted(span for span in kept if not overlaps(span, cancelled))


class EvidenceKind(Phrases):
    means: str  # what this evidence shows, in English (the judge and the docs read it)


class Level(_RubricModel):
    score: int = Field(ge=1, le=5)
    means: str  # what an answer at this level shows, in English
    # Kinds of evidence the answer must show, each "a" or "a|b" (either).
    needs: list[str] = Field(default_factory=list)
    count: int = Field(default=1, ge=1)  # distinct kinds of evidence, at least

    def met(self, shown: set[str]) -> bool:
        return len(shown) >= self.count and all(
            any(kind in shown for kind in need.split("|")) for need in self.needs
        )


class Rubric(_RubricModel):
    evidence: dict[str, EvidenceKind] = Field(min_length=1)
    levels: list[Level] = Field(min_length=1)
    # Answers that say there is nothing to tell ("I don't know", "never used it"): answered,
    # score 0, with that statement as the evidence.
    zero: Phrases = Field(default_factory=Phrases)
    # Red flag -> the explicit statements that raise it.
    flags: dict[str, Phrases] = Field(default_factory=dict)
    _index: PhraseIndex = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> Self:
        scores = [level.score for level in self.levels]
        if len(set(scores)) != len(scores):
            raise ValueError("two rubric levels with one score")
        for level in self.levels:
            for need in level.needs:
                for kind in need.split("|"):
                    if kind not in self.evidence:
                        raise ValueError(f"level {level.score} needs unknown evidence '{kind}'")
        groups = [*self.evidence.values(), self.zero, *self.flags.values()]
        self._index = PhraseIndex([phrase for group in groups for phrase in group.compiled])
        return self

    def read(self, said: Sequence[Word]) -> Found:
        """Every phrase of the rubric said in `said`, in one pass."""
        return self._index.find(said)

    def level(self, shown: set[str]) -> Level | None:
        """The highest level the evidence shown meets."""
        met = [level for level in self.levels if level.met(shown)]
        return max(met, key=lambda level: level.score, default=None)


class FlagEvidence(BaseModel):
    flag: str
    quote: str  # the candidate's words that raise it, verbatim
    contradicts: str | None = None  # for a contradiction: the earlier words it contradicts


class Assessment(BaseModel):
    node: str
    answered: bool  # False: "not answered" (no score, never a red flag)
    score: int | None = Field(default=None, ge=0, le=5)
    evidence: list[str] = Field(default_factory=list)  # the candidate's words behind the score
    red_flags: list[FlagEvidence] = Field(default_factory=list)

    @model_validator(mode="after")
    def _evidence_or_nothing(self) -> Self:
        if self.answered and (self.score is None or not self.evidence):
            raise ValueError("an answered question has a score and its evidence")
        if not self.answered and (self.score is not None or self.evidence or self.red_flags):
            raise ValueError("a question not answered has no score, evidence or red flags")
        return self


def not_answered(node_id: str) -> Assessment:
    return Assessment(node=node_id, answered=False)


def assess_answer(
    node_id: str, rubric: Rubric, allowed_flags: Sequence[str], answer: str, lang: str
) -> Assessment:
    """Score one answer by its rubric. Attempts to instruct the agent are left out first.

    `lang` is the call's language; phrases of both languages are looked for in any answer.
    """
    said = words(without_injections(answer))
    found = rubric.read(said)
    flags = {
        flag: spans[0]
        for flag in allowed_flags
        if flag in rubric.flags and (spans := rubric.flags[flag].spans(found, said))
    }
    zero = rubric.zero.spans(found, said)
    statements = [*flags.values(), *zero]
    shown: dict[str, Span] = {}
    for kind, phrases in rubric.evidence.items():
        for span in phrases.spans(found, said, affirmed=True):
            if not overlaps(span, statements):
                shown[kind] = span
                break
    level = rubric.level(set(shown))
    if level is not None:
        score, behind = level.score, list(shown.values())
    elif statements:
        score, behind = 0, statements[:1]
    else:
        return not_answered(node_id)
    return Assessment(
        node=node_id,
        answered=True,
        score=score,
        evidence=quotes(answer, said, behind),
        red_flags=[
            FlagEvidence(flag=flag, quote=quotes(answer, said, [span])[0])
            for flag, span in flags.items()
        ],
    )


def negated(said: Sequence[Word], span: Span) -> bool:
    """Whether the words of `span` are said with "not": a negation among them, just before
    them ("never used hypothesis", "not really a tdd person": articles and softeners aside)
    or just after them ("тесты не пишу"), in their clause, or they are the other half of
    something negated ("never used hypothesis or tox"); "not only" negates nothing."""
    first, last = span
    clause = said[first].clause
    joined = first >= 2 and said[first - 1].text in _ALTERNATIVES
    if joined and said[first - 2].clause == clause and negated(said, (first - 2, first - 2)):
        return True
    start, counted = first, 0
    while start > 0 and counted < NEGATION_REACH_BEFORE and said[start - 1].clause == clause:
        start -= 1
        counted += said[start].text not in _SOFTENERS
    return any(
        said[i].clause == clause
        and said[i].is_negation
        and (i + 1 >= len(said) or said[i + 1].text not in _NOT_NEGATING)
        for i in range(start, min(last + 1 + NEGATION_REACH_AFTER, len(said)))
    )
