"""Personal names from what a caller said, and whether an LLM's string is in their words.

A name is read after an introduction ("меня зовут", "my name is", "call me"; "это", "я",
"I'm", "it's", "this is" at the start; "X here", "X меня зовут" after it), or, where the
step asks for a name, from what is left of a bare utterance once greetings, fillers and
politeness are gone. Each word is checked: letters only, not a filler or a function word,
and for Russian not a known word without a name reading (pymorphy3: "таз" and "завтра"
are not names, "Вера", "Лев", "Петренко" can be). A self-repair keeps the last try
("маша ой то есть мария иванова"), spelled-out letters and repeats are dropped
("karen li l i", "кузьминская кузьминская").
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache

import pymorphy3

from dm.extract.numbers import ordinal_value, parse_cardinal
from dm.extract.text import clean, normalize, word_set

_TOKEN = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*|[0-9]+|\S")
_NAME_WORD = re.compile(r"[^\W\d_]{2,}(?:-[^\W\d_]{2,})*|[^\W\d_]+(?:'[^\W\d_]+)+")
_MAX_NAME_WORDS = 4

# Before a name, wherever they stand: "меня зовут Мария", "my name is Tom".
_INTRODUCTIONS = [
    ("меня", "зовут"),
    ("зовут",),
    ("мое", "имя"),
    ("называйте", "меня"),
    ("зовите", "меня"),
    ("записать", "на"),
    ("запишите", "на"),
    ("на", "имя"),
    ("put", "it", "under"),
    ("put", "me", "under"),
    ("under", "the", "name"),
    ("under", "the", "name", "of"),
    ("it's", "for", "my", "wife"),
    ("its", "for", "my", "wife"),
    ("it's", "for", "my", "husband"),
    ("its", "for", "my", "husband"),
    ("my", "first", "name", "is"),
    ("my", "name", "is"),
    ("my", "name's"),
    ("my", "names"),
    ("the", "name", "is"),
    ("the", "names"),
    ("name", "is"),
    ("name's",),
    ("call", "me"),
    ("it's",),
    ("its",),
    ("this", "is"),
    ("i", "am"),
    ("i'm",),
    ("im",),
]
# Before a surname: it joins a first name said before it, or stands for the surname.
_SURNAME_INTRODUCTIONS = [
    ("моя", "фамилия"),
    ("фамилия",),
    ("фамилия", "моя"),
    ("my", "last", "name", "is"),
    ("my", "surname", "is"),
    ("last", "name", "is"),
    ("last", "name"),
    ("surname", "is"),
    ("surname",),
]
_SURNAME_FIRST = sorted(_SURNAME_INTRODUCTIONS, key=len, reverse=True)
# Before a name only at the start of what is said (after greetings and fillers).
_OPENINGS = [("это",), ("я",), ("it", "is"), ("speaking",)]
# After a name: "Инга меня зовут", "Kyle here".
_AFTERWORDS = [("меня", "зовут"), ("зовут",), ("here",), ("speaking",)]
# A self-repair: the name said after it replaces the one before.
_REPAIRS: list[tuple[str, ...]] = [
    ("то", "есть"),
    ("i", "mean"),
    ("no", "wait"),
    ("or", "rather"),
    ("а", "нет"),
]
_REPAIRS += [(word,) for word in ["ой", "вернее", "точнее", "sorry", "actually"]]
_FILLERS = word_set("э ээ эээ эм ммм ну вот так uh um er erm like well ugh hmm")
_PAUSE_MARKS = frozenset(".,!?;:…—–")
_STOP_WORDS = word_set(
    """
    здравствуйте здравствуй здрасьте привет приветствую добрый доброе доброго день вечер утро
    алло алле але да нет ага угу ок окей ладно хорошо конечно спасибо пожалуйста извините
    простите э ээ эээ эм мм ммм ну вот так это то слушаю слушайте говорите короче значит
    типа блин девушка слушайте скажите подскажите
    я меня мне мой моя мое мои вы вас вам ваш ваше зовут имя фамилия звать отчество
    и а но или на в во с со к ко по за из от до для у о об про же ли бы не ни уже еще тоже
    хочу хотел хотела хотим записаться запишите записать запись мрт нужно надо можно могу
    звоню звоним сказать повторите понял поняла знаю что кто как где когда почему зачем
    сегодня завтра послезавтра телефон номер врач клиника оператор администратор человек
    hello hi hey hiya there good morning afternoon evening yes no yeah yep nope ok okay sure
    thanks thank please sorry um uh er erm hmm mm well so oh ah right dear
    i me my mine you your it its it's this that is am are was be the a an and or but of to
    in on at for with from by not name names call calling speaking here just also fine want
    would like book booking appointment mri scan phone number today tomorrow what who how
    why where when which can could should need needs wanted get got go going do does did
    have has had know think hear hold wait repeat again said say says tell told help
    hello's there's that's thats what's whats let lets see ok's calling about regarding doctor
    id i'd ive i've ill i'll youre you're dont don't cant can't wont won't
    mobile cell cellphone landline number's email
    тогда ладно давайте подождите подождите секунду секундочку минутку сейчас щас
    спросили спрашиваете записывайте пишите диктую запишите мобильный
    operator human person someone somebody anyone receptionist representative agent
    put under wife husband son daughter mother father mom dad works work
    monday tuesday wednesday thursday friday saturday sunday weekend
    ugh fine really very pretty kind sort windy noisy loud busy late early hard bad great
    cold hot raining driving car outside traffic line signal out over there
    ready glad happy interested available free nervous excited doing listening
    mobile's number's name's phone's cell's
    понедельник вторник среда среду четверг пятница пятницу суббота субботу воскресенье
    main street place clinic office front desk line real live rather give don't dont
    """
)
# Spelling aids after a name: "kowalski thats k o w a l s k i", "thomson without the p".
_SPELLING = [("without", "the"), ("with", "a"), ("thats",), ("that's",), ("spelled",), ("by",)]
# Russian name-like words pymorphy3 files as adjectives: surnames in -ский, -цкая, ...
_SURNAME_ENDINGS = ("ский", "ская", "цкий", "цкая", "ской", "ова", "ева", "ина", "ына")
_NAME_TAGS = ("Name", "Surn", "Patr")


@dataclass(frozen=True, slots=True)
class NameReading:
    value: str
    explicit: bool  # introduced ("меня зовут ...", "my name is ..."), not a bare utterance
    surname_only: bool = False  # "my last name is ...": the surname of a name known before


class _Kind(Enum):
    NAME = "name"  # may be part of a name
    PAUSE = "pause"  # a filler, a repair or punctuation: may split a name's tries
    SPELLING = "spelling"  # letters spelled out, "thats", "without the p"
    OTHER = "other"  # any other word


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    key: str
    kind: _Kind


@cache
def _morph() -> pymorphy3.MorphAnalyzer:
    return pymorphy3.MorphAnalyzer()


def read_name(text: str, *, bare: bool) -> NameReading | None:
    """The caller's name, 1-4 words, title-cased when said all lower or upper case.

    `bare`: whether a name may stand alone, without an introduction (the step asks for it).
    """
    words = _words_of(text)
    introduced = _introduced(words)
    if introduced is not None:
        return introduced
    if not bare:
        return None
    for tries in (_bare_tries(words), _russian_name_run(words)):
        name = _checked(tries[-1]) if tries else None
        if name:
            return NameReading(name, explicit=False)
    return None


def extract_name(text: str, lang: str = "") -> str | None:
    """The name a caller gave when asked for it, or None. `lang` is not needed."""
    reading = read_name(text, bare=True)
    return reading.value if reading else None


def _words_of(text: str) -> list[_Word]:
    cleaned = clean(text)
    matches = list(_TOKEN.finditer(cleaned))
    tokens = [match.group() for match in matches]
    keys = [normalize(token) for token in tokens]
    kinds = [_Kind.OTHER] * len(tokens)
    glued = [_glued(cleaned, match.start(), match.end()) for match in matches]
    index = 0
    while index < len(tokens):
        key = keys[index]
        if glued[index]:
            index += 1
            continue
        repair = _phrase_end(keys, index, _REPAIRS)
        spelling = _phrase_end(keys, index, _SPELLING)
        if repair is not None:
            kinds[index:repair] = [_Kind.PAUSE] * (repair - index)
            index = repair
            continue
        if spelling is not None:
            end = spelling
            while end < len(keys) and len(keys[end]) == 1 and keys[end].isalpha():
                end += 1
            kinds[index:end] = [_Kind.SPELLING] * (end - index)
            index = end
            continue
        if len(key) == 1 and key.isascii() and key.isalpha():
            kinds[index] = _Kind.SPELLING  # Latin letters spelled out; "я", "а" are words
        elif key in _FILLERS or key in _PAUSE_MARKS:
            kinds[index] = _Kind.PAUSE
        elif _is_name_word(key):
            kinds[index] = _Kind.NAME
        index += 1
    return [_Word(t, k, kind) for t, k, kind in zip(tokens, keys, kinds, strict=True)]


def _glued(text: str, start: int, end: int) -> bool:
    """Whether a token touches a digit, an underscore or a symbol with no space between:
    "Мария2", "мария_мария" are not names as said."""
    around = text[start - 1 : start] + text[end : end + 1]
    return any(char.isdigit() or char == "_" or _is_symbol(char) for char in around)


def _is_symbol(char: str) -> bool:
    return not (char.isalnum() or char.isspace() or char in _PAUSE_MARKS or char in "'-")


def _introduced(words: list[_Word]) -> NameReading | None:
    """The name after an introduction (the last one, if several), or before "here"; a
    surname introduced after it joins it ("Кирилл, фамилия Орлов")."""
    keys = [word.key for word in words]
    content_starts = next(
        (
            i
            for i, w in enumerate(words)
            if w.kind is _Kind.NAME or (w.kind is _Kind.OTHER and w.key not in _STOP_WORDS)
        ),
        len(words),
    )
    found: list[str] = []
    surname: list[str] = []
    inside_surname_phrase = 0  # "my last name is" holds "name is": not an introduction
    for start in range(len(words)):
        end = _phrase_end(keys, start, _SURNAME_FIRST)
        if end is not None:
            surname = _name_after(words, end)[:1] or surname
            if not found and start > 0:
                found = _name_before(words, start)
            inside_surname_phrase = end
            continue
        if start < inside_surname_phrase:
            continue
        end = _phrase_end(keys, start, _INTRODUCTIONS)
        if end is None and start <= content_starts:
            end = _phrase_end(keys, start, _OPENINGS)
        after = _name_after(words, end) if end is not None else []
        if after:
            found = after
        elif not found and _phrase_end(keys, start, _AFTERWORDS) is not None:
            found = _name_before(words, start)
    if found and surname and normalize(found[-1]) != normalize(surname[0]):
        name = _checked([*found[: _MAX_NAME_WORDS - 1], surname[0]])
    else:
        name = _checked(found)
    if name is not None:
        return NameReading(name, explicit=True)
    if surname and (checked := _checked(surname)) is not None:
        return NameReading(checked, explicit=True, surname_only=True)
    return None


def _name_after(words: list[_Word], index: int) -> list[str]:
    """Up to four name words from `index` on, past pauses; a repair after them starts
    again ("it's liz uh elizabeth carter")."""
    name: list[str] = []
    spelled = False  # after a spelling aid, only its letters follow
    while index < len(words):
        word = words[index]
        if word.kind is _Kind.NAME and len(name) < _MAX_NAME_WORDS and not spelled:
            name.append(word.text)
        elif word.kind is _Kind.PAUSE:
            restart = word.key in _FILLERS or _phrase_end([word.key], 0, _REPAIRS) is not None
            following = next(
                (
                    w
                    for w in words[index:]
                    if w.kind is not _Kind.PAUSE and not (restart and w.key in _STOP_WORDS)
                ),
                None,
            )
            if name and restart and following is not None and following.kind is _Kind.NAME:
                name = []
                index = words.index(following, index)
                continue
            if name:
                break
        elif word.kind is _Kind.SPELLING and name:
            spelled = True
        else:
            break
        index += 1
    return _unrepeated(name)


def _name_before(words: list[_Word], index: int) -> list[str]:
    name: list[str] = []
    while index > 0 and words[index - 1].kind is _Kind.NAME and len(name) < _MAX_NAME_WORDS:
        name.insert(0, words[index - 1].text)
        index -= 1
    return name


def _bare_tries(words: list[_Word]) -> list[list[str]]:
    """The tries at a name in an utterance that says nothing else: runs of name words
    split by pauses. Empty when other words stand between or after them ("хочу на
    завтра" is a sentence, not a name)."""
    tries: list[list[str]] = [[]]
    other_seen = False
    for word in words:
        if word.kind is _Kind.NAME:
            if other_seen:
                return []
            tries[-1].append(word.text)
        elif word.kind is _Kind.PAUSE:
            if tries[-1]:
                tries.append([])
        elif (word.kind is _Kind.OTHER and word.key not in _STOP_WORDS) or any(tries):
            other_seen = other_seen or word.kind is _Kind.OTHER
    return [_unrepeated(t) for t in tries if t]


def corrected_name(name: str, text: str) -> str | None:
    """`name` with one word replaced as the caller corrects it: "не Петренко, а Петрова",
    "not Thompson, Thomson"; None when the text corrects no word of it."""
    words = _words_of(text)
    parts = name.split()
    for index, word in enumerate(words[:-1]):
        if word.key not in ("не", "not") or words[index + 1].kind is not _Kind.NAME:
            continue
        wrong = words[index + 1].key
        at_part = next((i for i, p in enumerate(parts) if _same_stem(normalize(p), wrong)), None)
        if at_part is None:
            continue
        rest = [w for w in words[index + 2 :] if w.key not in ("а", "but", "it's", "its", "it")]
        right = next((w for w in rest if w.kind is _Kind.NAME), None)
        if right is None or right.key == wrong or _checked([right.text]) is None:
            continue
        return " ".join([*parts[:at_part], _title(right.text), *parts[at_part + 1 :]])
    return None


def _russian_name_run(words: list[_Word]) -> list[list[str]]:
    """A run of Russian name words that surely holds a first name or patronymic, wherever
    it stands: "ой простите, вы имя спросили, Зинаида Павловна"."""
    runs: list[list[str]] = [[]]
    for word in words:
        if word.kind is _Kind.NAME and _is_cyrillic(word.text) and _russian_kind(word.key) != "no":
            runs[-1].append(word.text)
        elif runs[-1]:
            runs.append([])
    sure = [run for run in runs if run and any(_surely_name(normalize(w)) for w in run)]
    return [_unrepeated(sure[-1][:_MAX_NAME_WORDS])] if sure else []


def _surely_name(key: str) -> bool:
    """The word's likeliest reading is a first name or a patronymic."""
    best = _morph().parse(key)[0]
    return "Name" in best.tag or "Patr" in best.tag


def _checked(words: list[str]) -> str | None:
    """The words as a name, if they can be one."""
    if not words or not all(_is_name_word(normalize(word)) for word in words):
        return None
    if any(_is_cyrillic(word) for word in words) and not _russian_name(words):
        return None
    return " ".join(_title(word) for word in words)


def _russian_name(words: list[str]) -> bool:
    """Every word may be a name, surname or patronymic, and one surely is (or it is one
    word the dictionary does not know). After a first name or patronymic, the last word
    may be any noun, and so may the first: surnames often are ("Лев Маркович Зима",
    "Белоус Ольга Викторовна")."""
    keys = [normalize(word) for word in words]
    kinds = [_russian_kind(key) for key in keys]
    if len(keys) > 1 and "name" in kinds:
        for at_end in (0, len(keys) - 1):  # a surname stands first or last
            if kinds[at_end] == "no" and _is_noun(keys[at_end]):
                kinds[at_end] = "maybe"
    return "no" not in kinds and ("name" in kinds or len(words) == 1)


def _is_noun(key: str) -> bool:
    return any(parse.tag.POS == "NOUN" for parse in _morph().parse(key))


@cache
def _russian_kind(key: str) -> str:
    """ "name" (a name reading), "maybe" (unknown word, a surname form) or "no"."""
    morph = _morph()
    parses = morph.parse(key)
    if any(any(tag in parse.tag for tag in _NAME_TAGS) for parse in parses):
        return "name"
    proper = any("Geox" in parse.tag or "Orgn" in parse.tag for parse in parses)
    if proper or not morph.word_is_known(key) or key.endswith(_SURNAME_ENDINGS):
        return "maybe"
    return "no"


def _is_name_word(key: str) -> bool:
    if _NAME_WORD.fullmatch(key) is None or key in _STOP_WORDS:
        return False
    if parse_cardinal([key], 0) is None and ordinal_value(key) is None:
        return True
    # A number word may be a Russian surname too: "Сорока" (a magpie; "of forty").
    return _is_cyrillic(key) and _is_noun(key) and not key.endswith(("ого", "ой"))


def _unrepeated(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if not out or normalize(out[-1]) != normalize(word):
            out.append(word)
    return out


def _phrase_end(keys: list[str], start: int, phrases: Sequence[tuple[str, ...]]) -> int | None:
    for phrase in phrases:
        if tuple(keys[start : start + len(phrase)]) == phrase:
            return start + len(phrase)
    return None


def _is_cyrillic(word: str) -> bool:
    return any("а" <= char <= "я" or char == "ё" for char in word.lower())


def _title(word: str) -> str:
    if not (word.islower() or word.isupper()):
        return word
    return "-".join(_capital(part[:1]) + part[1:].lower() for part in word.split("-"))


def _capital(letter: str) -> str:
    """The letter in upper case, unless that takes two letters ("ß" stays "ß")."""
    upper = letter.upper()
    return upper if len(upper) == len(letter) else letter


# How `grounded` lets words differ, as Russian case endings do: "Мария", "Марией".
_ENDING_LETTERS = 2
_MIN_STEM = 3
_MAX_LENGTH_DIFFERENCE = 3


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


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", normalize(text))


def _same_stem(first: str, second: str) -> bool:
    shorter, longer = sorted((first, second), key=len)
    if len(shorter) < _MIN_STEM or len(longer) - len(shorter) > _MAX_LENGTH_DIFFERENCE:
        return False
    stem = max(len(shorter) - _ENDING_LETTERS, _MIN_STEM)
    return shorter[:stem] == longer[:stem]
