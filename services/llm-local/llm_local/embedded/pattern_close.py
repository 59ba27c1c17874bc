"""The fewest characters that make a string match a regular expression.

Covers the pattern subset `grammar` admits (anchored; no escapes, lookarounds or
negated classes) and the string formats, written in that subset: literals, `.`,
classes with ranges, groups, `|`, and the quantifiers `? * + {m} {m,} {m,n}`. The
pattern becomes a small NFA; the text so far is run through it, and a breadth-first
search from where it ends finds the shortest way to an accepting state.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache

# The formats the grammar supports, exactly as llama.cpp's converter constrains them.
_DATE = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = (
    "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
FORMAT_PATTERNS = {"date": _DATE, "time": _TIME, "date-time": f"{_DATE}T{_TIME}", "uuid": _UUID}

Ranges = tuple[tuple[int, int], ...]
# `.` inside a JSON string: anything but a quote, a backslash or a control character.
_ANY: Ranges = ((0x20, 0x21), (0x23, 0x5B), (0x5D, 0x10FFFF))


class PatternError(ValueError):
    """The pattern is outside the supported subset."""


@dataclass(frozen=True, slots=True)
class _Chars:
    ranges: Ranges


@dataclass(frozen=True, slots=True)
class _Concat:
    parts: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Alt:
    options: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Repeat:
    node: _Node
    low: int
    high: int | None  # None: unbounded


_Node = _Chars | _Concat | _Alt | _Repeat


class _Parser:
    def __init__(self, pattern: str) -> None:
        self._text = pattern
        self._at = 0

    def parse(self) -> _Node:
        node = self._alternation()
        if self._at != len(self._text):
            raise PatternError(f"unexpected {self._text[self._at]!r} in {self._text!r}")
        return node

    def _peek(self) -> str:
        return self._text[self._at] if self._at < len(self._text) else ""

    def _alternation(self) -> _Node:
        options = [self._concatenation()]
        while self._peek() == "|":
            self._at += 1
            options.append(self._concatenation())
        return options[0] if len(options) == 1 else _Alt(tuple(options))

    def _concatenation(self) -> _Node:
        parts: list[_Node] = []
        while self._peek() not in ("", "|", ")"):
            parts.append(self._quantified(self._atom()))
        return _Concat(tuple(parts))

    def _atom(self) -> _Node:
        char = self._peek()
        self._at += 1
        if char == "(":
            node = self._alternation()
            if self._peek() != ")":
                raise PatternError(f"unclosed group in {self._text!r}")
            self._at += 1
            return node
        if char == "[":
            return self._class()
        if char == ".":
            return _Chars(_ANY)
        if char in "^$\\*+?)":
            raise PatternError(f"unsupported {char!r} in {self._text!r}")
        return _Chars(((ord(char), ord(char)),))

    def _class(self) -> _Node:
        end = self._text.find("]", self._at + 1)
        if end < 0:
            raise PatternError(f"unclosed class in {self._text!r}")
        body, self._at = self._text[self._at : end], end + 1
        ranges = []
        i = 0
        while i < len(body):
            if i + 2 < len(body) and body[i + 1] == "-":
                ranges.append((ord(body[i]), ord(body[i + 2])))
                i += 3
            else:
                ranges.append((ord(body[i]), ord(body[i])))
                i += 1
        return _Chars(tuple(ranges))

    def _quantified(self, node: _Node) -> _Node:
        while True:
            char = self._peek()
            if char in ("?", "*", "+"):
                self._at += 1
                low, high = {"?": (0, 1), "*": (0, None), "+": (1, None)}[char]
            elif char == "{" and (bounds := self._bounds()) is not None:
                low, high = bounds
            else:
                return node
            if self._peek() == "?":  # lazy: the same strings
                self._at += 1
            node = _Repeat(node, low, high)

    def _bounds(self) -> tuple[int, int | None] | None:
        end = self._text.find("}", self._at)
        if end < 0:
            return None
        low, comma, high = self._text[self._at + 1 : end].partition(",")
        if not low.isdigit() or (high and not high.isdigit()):
            return None  # a literal "{", as in Python's re
        self._at = end + 1
        if not comma:
            return int(low), int(low)
        return int(low), int(high) if high else None


class _Nfa:
    def __init__(self, root: _Node) -> None:
        self.eps: list[list[int]] = []
        self.moves: list[list[tuple[Ranges, int]]] = []
        self.start, self.accept = self._build(root)

    def _state(self) -> int:
        self.eps.append([])
        self.moves.append([])
        return len(self.eps) - 1

    def _build(self, node: _Node) -> tuple[int, int]:
        start = self._state()
        end = start
        if isinstance(node, _Chars):
            end = self._state()
            self.moves[start].append((node.ranges, end))
        elif isinstance(node, _Concat):
            for part in node.parts:
                first, last = self._build(part)
                self.eps[end].append(first)
                end = last
        elif isinstance(node, _Alt):
            end = self._state()
            for option in node.options:
                first, last = self._build(option)
                self.eps[start].append(first)
                self.eps[last].append(end)
        else:
            end = self._repeat(start, node)
        return start, end

    def _repeat(self, start: int, node: _Repeat) -> int:
        end = start
        for _ in range(node.low):
            first, last = self._build(node.node)
            self.eps[end].append(first)
            end = last
        if node.high is None:
            first, last = self._build(node.node)
            self.eps[end].append(first)
            self.eps[last].append(end)
            return end
        done = self._state()
        for _ in range(node.high - node.low):
            self.eps[end].append(done)
            first, last = self._build(node.node)
            self.eps[end].append(first)
            end = last
        self.eps[end].append(done)
        return done

    def closure(self, states: set[int]) -> set[int]:
        stack = list(states)
        seen = set(states)
        while stack:
            for nxt in self.eps[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def step(self, states: set[int], char: str) -> set[int]:
        code = ord(char)
        return self.closure(
            {
                target
                for state in states
                for ranges, target in self.moves[state]
                if any(lo <= code <= hi for lo, hi in ranges)
            }
        )

    def shortest(self, states: set[int]) -> str | None:
        """The fewest characters from any of `states` to the accepting state."""
        # 0-1 breadth-first search: epsilon moves cost nothing, a character one.
        cost = dict.fromkeys(states, 0)
        back: dict[int, tuple[int, str]] = {}
        queue = deque(states)
        done: set[int] = set()
        while queue:
            state = queue.popleft()
            if state in done:
                continue
            done.add(state)
            if state == self.accept:
                chars = []
                while state in back:
                    state, char = back[state]
                    chars.append(char)
                return "".join(reversed(chars))
            here = cost[state]
            for nxt in self.eps[state]:
                if here < cost.get(nxt, here + 1):
                    cost[nxt], back[nxt] = here, (state, "")
                    queue.appendleft(nxt)
            for ranges, nxt in self.moves[state]:
                if here + 1 < cost.get(nxt, here + 2):
                    cost[nxt], back[nxt] = here + 1, (state, _representative(ranges))
                    queue.append(nxt)
        return None


def _representative(ranges: Ranges) -> str:
    """A character of `ranges` that is safe raw inside a JSON string."""
    for lo, hi in ranges:
        for code in range(max(lo, 0x20), min(hi, 0x7E) + 1):
            if chr(code) not in '"\\':
                return chr(code)
    return chr(max(ranges[0][0], 0xA0))


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> _Nfa:
    return _Nfa(_Parser(pattern).parse())


def pattern_completion(text: str, pattern: str) -> str | None:
    """The shortest suffix making `text` match `pattern` in full (no anchors);
    None when no suffix can, or the pattern is outside the subset."""
    try:
        nfa = _compiled(pattern)
    except PatternError:
        return None
    states = nfa.closure({nfa.start})
    for char in text:
        states = nfa.step(states, char)
        if not states:
            return None
    return nfa.shortest(states)
