"""Personal names from what a caller said, and whether an LLM's string is in their words."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from dm.extract.text import clean, normalize, word_set

# Words (letters, inner hyphens or apostrophes), digit runs, and any other single character.
_TOKEN = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*|[0-9]+|\S")
_NAME_WORD = re.compile(r"[^\W\d_]{2,}(?:-[^\W\d_]{2,})*")
_SEPARATORS = frozenset(",.!?;:-…")
_MAX_NAME_WORDS = 3

# Introductions the name follows wherever they stand: "меня зовут Мария".
_INTRODUCTIONS = [
    ("меня", "зовут"),
    ("зовут",),
    ("мое", "имя"),
    ("называйте", "меня"),
    ("зовите", "меня"),
    ("my", "name", "is"),
    ("my", "name's"),
    ("name", "is"),
    ("name's",),
    ("call", "me"),
]
# Introductions that count only at the start of the utterance: "это Мария", "I'm John".
_OPENINGS = [
    ("это",),
    ("я",),
    ("i", "am"),
    ("i'm",),
    ("im",),
    ("this", "is"),
    ("it's",),
    ("it", "is"),
]
# Words that may follow a name given after an opening: "это Мария, хочу записаться".
_AFTER_OPENING = word_set(
    "я и а хочу хотела хотел хотим звоню звоним по насчет вот можно "
    "i i'm im and want would like calling speaking here from about"
)
_FIRST_WORDS = frozenset(phrase[0] for phrase in _INTRODUCTIONS + _OPENINGS)
_STOP_WORDS = word_set(
    """
    здравствуйте здравствуй здрасьте привет приветствую добрый доброе доброго день вечер утро
    алло алле да нет ага угу ок окей ладно хорошо конечно спасибо пожалуйста извините простите
    э ээ эм мм ну вот так это то вот слушаю слушайте говорите да-да нет-нет
    я меня мне мой моя мое мои вы вас вам ваш ваше зовут имя фамилия звать
    и а но или на в во с со к ко по за из от до для у о об про же ли бы не ни уже еще тоже
    хочу хотел хотела хотим записаться запишите записать запись мрт нужно надо можно могу
    звоню звоним сказать скажите повторите понял поняла знаю что кто как где когда почему
    сегодня завтра послезавтра телефон номер врач клиника
    hello hi hey good morning afternoon evening yes no yeah yep nope ok okay sure thanks
    thank please sorry um uh er erm hmm mm well so oh ah right
    i me my mine you your it its it's this that is am are was be the a an and or but of to in
    on at for with from by not name call calling speaking here just also fine want would like
    book booking appointment mri scan phone number today tomorrow what who how why
    """
)
# How `grounded` lets words differ, as Russian case endings do: "Мария", "Марией".
_ENDING_LETTERS = 2
_MIN_STEM = 3
_MAX_LENGTH_DIFFERENCE = 3


def extract_name(text: str, lang: str) -> str | None:
    """A caller's name of 1-3 words, title-cased when it came all lower or upper case.

    Read after an introduction ("меня зовут", "my name is", "call me"; "это", "я", "I'm",
    "this is" only at the start), else from a bare utterance of 1-3 words none of which is
    a stop word (greetings, yes/no, filler, request words). Letters and hyphens only;
    ё is kept as said. `lang` is not needed: both languages are read.
    """
    tokens: list[str] = _TOKEN.findall(clean(text))
    keys = [normalize(token) for token in tokens]
    # Openings count up to the first word that is not a greeting, filler or separator.
    openings_until = next(
        (i for i, key in enumerate(keys) if key not in _STOP_WORDS and key not in _SEPARATORS),
        len(keys),
    )
    for start, key in enumerate(keys):
        if key not in _FIRST_WORDS:
            continue
        name = None
        end = _phrase_end(keys, start, _INTRODUCTIONS)
        if end is not None:
            name = _name_at(tokens, keys, end, opening=False)
        elif start <= openings_until and (end := _phrase_end(keys, start, _OPENINGS)):
            name = _name_at(tokens, keys, end, opening=True)
        if name is not None:
            return name
    words = [token for token in tokens if token not in _SEPARATORS]
    if 1 <= len(words) <= _MAX_NAME_WORDS and all(_is_name_word(word) for word in words):
        return " ".join(_title(word) for word in words)
    return None


def grounded(value: str, text: str) -> bool:
    """Whether every word of `value` stands in `text`, each text word used once.

    Words compare case-insensitively (ё as е) by a common stem: the shorter word less up to
    two trailing letters, at least three letters, and lengths at most three apart, so
    Russian case endings match ("Марией" for "Мария"); a word under three letters must
    match exactly. Repeating a word more often than the text does ("Мария Мария" for one
    "Мария") or an empty value gives False.
    """
    wanted = _words(value)
    available = _words(text)
    if not wanted or len(wanted) > len(available):
        return False
    # Exact matches first, so a stem match cannot take a word another needs verbatim.
    unused = Counter(available)
    inexact = []
    for word in wanted:
        if unused[word]:
            unused[word] -= 1
        else:
            inexact.append(word)
    # Words that share a stem share its first three letters.
    by_prefix: dict[str, list[str]] = defaultdict(list)
    for word, count in unused.items():
        by_prefix[word[:_MIN_STEM]] += [word] * count
    for word in inexact:
        candidates = by_prefix[word[:_MIN_STEM]]
        match = next((other for other in candidates if _same_stem(word, other)), None)
        if match is None:
            return False
        candidates.remove(match)
    return True


def _phrase_end(keys: list[str], start: int, phrases: list[tuple[str, ...]]) -> int | None:
    for phrase in phrases:
        if tuple(keys[start : start + len(phrase)]) == phrase:
            return start + len(phrase)
    return None


def _name_at(tokens: list[str], keys: list[str], index: int, opening: bool) -> str | None:
    """Up to three name words from `index` on, after an optional ":" or dash.

    After an opening ("это", "I'm") the name must end the clause, so that "это очень
    важно для меня" is not a name.
    """
    if index < len(tokens) and tokens[index] in {":", "-"}:
        index += 1
    words: list[str] = []
    for token in tokens[index : index + _MAX_NAME_WORDS]:
        if not _is_name_word(token):
            break
        words.append(_title(token))
    after = keys[index + len(words)] if index + len(words) < len(keys) else ""
    if opening and after and after not in _SEPARATORS and after not in _AFTER_OPENING:
        return None
    return " ".join(words) or None


def _is_name_word(word: str) -> bool:
    return _NAME_WORD.fullmatch(word) is not None and normalize(word) not in _STOP_WORDS


def _title(word: str) -> str:
    if not (word.islower() or word.isupper()):
        return word
    return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", normalize(text))


def _same_stem(first: str, second: str) -> bool:
    shorter, longer = sorted((first, second), key=len)
    if len(shorter) < _MIN_STEM or len(longer) - len(shorter) > _MAX_LENGTH_DIFFERENCE:
        return False
    stem = max(len(shorter) - _ENDING_LETTERS, _MIN_STEM)
    return shorter[:stem] == longer[:stem]
