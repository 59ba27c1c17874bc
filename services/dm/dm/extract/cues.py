"""What an utterance does besides giving details: asks for a person, asks a question,
refuses, corrects or negates something. Russian and English, read whatever the language.

These cues decide whether the words alone settle a turn (no cue: the rules path may) and
what the agent says back (a question gets an answer, a refusal the reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dm.extract.text import normalize, tokenize, word_set

# Asking for a person. A phrase that means it anywhere...
_PERSON_PHRASES = [
    "живой человек",
    "живого человека",
    "живым человеком",
    "с человеком",
    "real person",
    "live person",
    "actual person",
    "human being",
    "a human",
    "someone at the front desk",
    "someone real",
]
# ...a request word, then who within a few words ("позовите администратора", "can I
# talk to someone", "put me through to the operator")...
_ASKING = word_set(
    """
    позовите позвать соедините соединить переключите переключить дайте пригласите
    поговорить связаться свяжите хочу нужен нужна можно
    speak talk get put transfer connect want need
    """
)
_PEOPLE = (
    "оператор",
    "администратор",
    "менеджер",
    "человек",
    "сотрудник",
    "регистратур",
    "кого",
    "кто",
    "operator",
    "person",
    "human",
    "someone",
    "somebody",
    "agent",
    "representative",
    "manager",
    "receptionist",
    "staff",
    "front",
)
# ...or who, said alone ("оператор", "um operator please").
_ALONE = word_set("оператор оператора operator human receptionist representative администратор")
_POLITE = word_set("пожалуйста please uh um э ээ эээ ну а the an a")
_REQUEST_WINDOW = 5


# Question words and openings that make an utterance a question without a "?".
_QUESTION_STARTS = word_set(
    """
    зачем почему сколько как когда где что кто какой какая какие какое разве неужели
    why how what when where who which whats hows
    """
)
_QUESTION_OPENINGS = [
    ("а", "это"),
    ("а", "вы"),
    ("а", "можно"),
    ("а", "есть"),
    ("а", "у"),
    ("это", "больно"),
    ("можно", "ли"),
    ("do", "you"),
    ("can", "you"),
    ("could", "you"),
    ("is", "it"),
    ("is", "this"),
    ("is", "that"),
    ("are", "you"),
    ("does", "it"),
    ("will", "it"),
    ("do", "i"),
    ("should", "i"),
    ("is", "there"),
]
_REFUSAL_PHRASES = [
    "не хочу",
    "не буду",
    "не скажу",
    "не дам",
    "не стану",
    "не обязательно",
    "не ваше дело",
    "обойдетесь",
    "rather not",
    "dont want",
    "don't want",
    "do not want",
    "not giving",
    "wont give",
    "won't give",
    "not going to give",
    "none of your business",
    "no names",
    "prefer not",
]
# Self-repair and correction words: what follows replaces something said before.
_CORRECTION_WORDS = word_set(
    """
    нет не ой вернее точнее лучше исправьте поменяйте измените перепутал перепутала
    ошибся ошиблась неправильно неверно
    no not actually instead wait change wrong sorry rather oops
    """
)
_CORRECTION_PHRASES = ["то есть", "i mean", "make it", "scratch that", "а нет"]
_NEGATIONS = word_set("нет не неа no not nope nah dont don't isnt isn't wrong")
# Words that carry nothing for the step: a line checked or lost, a filler, a sound. An
# utterance of only these ("алло?", "uh", "can you hear me", "шум") gets the step's
# question again, with no LLM call: there is nothing in it to read.
_NOTHING_SAID = word_set(
    """
    алло ало алле аллё алё слышите слышно слышу вы меня плохо связь прерывается
    э ээ эээ эм мм ммм хм ну так сейчас секунду минуту шум что а
    hello hallo hi hey can you hear me there are is anyone breaking up cutting out youre re
    uh um er erm hmm hm mm mmm huh what sorry pardon noise
    """
)
_LAST_DIGITS = re.compile(
    r"(?:последн\w*|конце|заканчивается|last|ends?\s+(?:in|with))\D{0,40}?((?:\d[\s-]?){1,4})\b"
)


@dataclass(frozen=True, slots=True)
class Cues:
    person: bool = False  # asks to talk to a person
    question: bool = False
    refusal: bool = False
    correction: bool = False  # a repair or correction word ("нет", "actually", "то есть")
    negation: bool = False
    words: int = 0  # how many words were said
    nothing_said: bool = False  # only fillers, sounds and line checks ("алло?", "uh")
    last_digits: str = ""  # "the last digits are 68": digits replacing a number's tail

    @property
    def plain(self) -> bool:
        """Nothing here needs interpretation beyond the details read."""
        return not (self.person or self.question or self.refusal or self.correction)


def read_cues(text: str) -> Cues:
    normalized = normalize(text)
    words = tokenize(normalized).words
    joined = " " + " ".join(words) + " "
    digits = _LAST_DIGITS.search(normalized)
    nothing_said = all(w in _NOTHING_SAID for w in words)
    return Cues(
        person=_asks_for_a_person(words, joined),
        # "алло?", "can you hear me?" check the line; they ask for no answer but the question.
        question=not nothing_said and ("?" in text or _is_question(words)),
        refusal=_has_phrase(joined, _REFUSAL_PHRASES),
        correction=any(w in _CORRECTION_WORDS for w in words)
        or _has_phrase(joined, _CORRECTION_PHRASES),
        negation=any(w in _NEGATIONS for w in words),
        words=len(words),
        nothing_said=nothing_said,
        last_digits=re.sub(r"\D", "", digits.group(1)) if digits else "",
    )


def _asks_for_a_person(words: list[str], joined: str) -> bool:
    if _has_phrase(joined, _PERSON_PHRASES):
        return True
    content = [word for word in words if word not in _POLITE]
    if content and all(word in _ALONE for word in content):
        return True
    for index, word in enumerate(words):
        if word in _ASKING:
            following = words[index + 1 : index + 1 + _REQUEST_WINDOW]
            if any(later.startswith(_PEOPLE) for later in following):
                return True
    return False


def _has_phrase(joined: str, phrases: list[str]) -> bool:
    return any(f" {phrase} " in joined for phrase in phrases)


def _is_question(words: list[str]) -> bool:
    start = 0
    while start < len(words) and words[start] in {"а", "и", "so", "and", "oh", "ok", "okay", "ну"}:
        start += 1
    rest = words[start:]
    if not rest:
        return False
    if rest[0] in _QUESTION_STARTS:
        return True
    return any(tuple(rest[: len(opening)]) == opening for opening in _QUESTION_OPENINGS)
