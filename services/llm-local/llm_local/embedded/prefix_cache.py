"""Which KV cells hold which tokens: a radix tree of decoded runs, shared by sequences.

llama.cpp tags every KV cell with the sequence ids that use it. With a unified KV
cache `llama_memory_seq_cp` only adds a tag (no data moves) and `llama_memory_seq_rm`
removes one; a cell is free once its last tag is gone. This class mirrors those tags
so the engine knows, without asking llama.cpp, which token prefixes are decoded and
how many cells are in use:

- a *run* is cells decoded together at consecutive positions; it is *held* by every
  sequence whose cells include it, and a sequence's cells are the runs from the root
  to its *tail* (a child's holders are always among its parent's);
- a request looks up the longest decoded prefix of its prompt (`match`), copies those
  cells from any holder (`attach`) and decodes only the rest (`extend`);
- a finished request's sequence stays as a *cached* one (`keep`) unless other
  sequences already hold all its tokens; cached sequences are evicted least recently
  used first (`evict`) when the engine runs short of sequence ids or cells.

This is the bookkeeping only; kv_space.py makes the matching llama.cpp calls.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

# A shared prefix shorter than this is not worth copying or waiting for.
MIN_SHARED_TOKENS = 16


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    if list(a[:n]) == list(b[:n]):  # the usual case, compared in C
        return n
    i = 0
    while a[i] == b[i]:
        i += 1
    return i


@dataclass(eq=False, slots=True)
class Run:
    start: int  # position of its first cell
    tokens: list[int]
    parent: Run | None
    children: list[Run] = field(default_factory=list)
    holders: set[int] = field(default_factory=set)

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)


@dataclass(frozen=True, slots=True)
class Match:
    length: int  # leading prompt tokens whose cells exist
    source: int | None  # a sequence holding them; None when length is 0


class PrefixCache:
    def __init__(self) -> None:
        self._root = Run(0, [], None)
        self._tails: dict[int, Run] = {}  # every sequence with cells (or about to) → its tail
        self._cached: OrderedDict[int, None] = OrderedDict()  # least recently used first
        self.cells = 0  # KV cells in use by all sequences

    @property
    def cached(self) -> int:
        """Finished sequences kept for their prefixes."""
        return len(self._cached)

    def is_cached(self, seq_id: int) -> bool:
        return seq_id in self._cached

    def length(self, seq_id: int) -> int:
        """Positions the sequence's cells cover."""
        return self._tails.get(seq_id, self._root).end

    def match(self, tokens: Sequence[int], *, exclude: int | None = None) -> Match:
        """The longest decoded prefix of `tokens`, ignoring cells only `exclude` holds."""
        run, length = self._root, 0
        while length < len(tokens):
            best, best_n = None, 0
            for child in run.children:
                if exclude is not None and child.holders == {exclude}:
                    continue
                n = common_prefix(child.tokens, tokens[length : length + len(child.tokens)])
                if n > best_n:
                    best, best_n = child, n
            if best is None:
                break
            run, length = best, length + best_n
            if best_n < len(best.tokens):
                break
        if length == 0:
            return Match(0, None)
        return Match(length, min(h for h in run.holders if h != exclude))

    def attach(self, seq_id: int, source: int, length: int) -> list[int]:
        """Give `seq_id` the cells of `source`'s first `length` positions.

        `seq_id` is new (no cells) or already holds a shorter prefix of `source`'s
        cells. Returns the cached sequences this makes redundant (every cell of theirs
        is now held by `seq_id` too): they are dropped here, the caller removes them
        from llama.cpp and reuses their ids.
        """
        target = self._tails[source]
        while target.start >= length:
            assert target.parent is not None
            target = target.parent
        if length < target.end:
            self._split(target, length - target.start)
        own = self._tails.get(seq_id, self._root)
        path = []
        run: Run | None = target
        while run is not None and run is not own:
            path.append(run)
            run = run.parent
        if run is None:
            raise ValueError(f"sequence {seq_id} holds cells {source} does not")
        for step in path:
            step.holders.add(seq_id)
        self._tails[seq_id] = target
        for holder in target.holders:
            if holder in self._cached:
                self._cached.move_to_end(holder)
        redundant = [s for s, tail in self._tails.items() if s in self._cached and tail in path]
        for s in redundant:
            self.remove(s)
        return redundant

    def extend(self, seq_id: int, tokens: Sequence[int]) -> None:
        """`seq_id` decoded `tokens` at the positions after its cells."""
        tail = self._tails.get(seq_id, self._root)
        if tail is not self._root and tail.holders == {seq_id} and not tail.children:
            tail.tokens.extend(tokens)
        else:
            run = Run(tail.end, list(tokens), tail, holders={seq_id})
            tail.children.append(run)
            self._tails[seq_id] = run
        self.cells += len(tokens)

    def keep(self, seq_id: int) -> list[int]:
        """`seq_id` finished: keep it as the most recent cached sequence, or drop it.

        Returns the sequences dropped (it, when it has no cells or others already hold
        all its tokens; else the cached ones it makes redundant): the caller frees them
        in llama.cpp.
        """
        if seq_id not in self._tails or self._covered(seq_id):
            self.remove(seq_id)
            return [seq_id]
        self._cached[seq_id] = None
        dropped = [s for s in self._cached if s != seq_id and self._covered(s)]
        for s in dropped:
            self.remove(s)
        return dropped

    def remove(self, seq_id: int) -> None:
        """Forget `seq_id`'s tags; cells nobody else holds are freed."""
        self._cached.pop(seq_id, None)
        run: Run | None = self._tails.pop(seq_id, None)
        while run is not None and run.parent is not None:
            run.holders.discard(seq_id)
            if not run.holders:
                run.parent.children.remove(run)
                self.cells -= len(run.tokens)
            run = run.parent

    def evict(self) -> int | None:
        """Drop the least recently used cached sequence; its id, or None if there is none."""
        if not self._cached:
            return None
        seq_id = next(iter(self._cached))
        self.remove(seq_id)
        return seq_id

    def idle_cells(self) -> int:
        """Cells held by cached sequences only: what eviction could free."""
        idle = 0
        stack = list(self._root.children)
        while stack:
            run = stack.pop()
            if run.holders.issubset(self._cached):
                idle += len(run.tokens)
            stack.extend(run.children)
        return idle

    def clear(self) -> None:
        self._root.children.clear()
        self._tails.clear()
        self._cached.clear()
        self.cells = 0

    def _covered(self, seq_id: int) -> bool:
        """Whether other sequences hold cells for all of `seq_id`'s tokens."""
        tokens = self._tokens(seq_id)
        return self.match(tokens, exclude=seq_id).length == len(tokens)

    def _tokens(self, seq_id: int) -> list[int]:
        runs = []
        run: Run | None = self._tails[seq_id]
        while run is not None:
            runs.append(run.tokens)
            run = run.parent
        return [t for tokens in reversed(runs) for t in tokens]

    def _split(self, run: Run, offset: int) -> None:
        """Cut `run` after `offset` tokens; the rest becomes its only child."""
        rest = Run(run.start + offset, run.tokens[offset:], run, run.children, set(run.holders))
        for child in rest.children:
            child.parent = rest
        run.tokens = run.tokens[:offset]
        run.children = [rest]
        for seq_id, tail in self._tails.items():
            if tail is run:
                self._tails[seq_id] = rest
