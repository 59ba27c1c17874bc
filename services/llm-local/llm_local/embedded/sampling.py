"""Per-sequence token sampling, with the grammar applied to a few candidates only.

llama.cpp's grammar sampler checks every candidate it is given against the
grammar; over the whole 49k vocabulary that costs more than the decode itself.
So the top-k candidates are taken first (a partial sort in C) and the grammar
masks only those; when it rejects all of them, a wider top-k is tried, then the
whole vocabulary. For greedy decoding this picks exactly the token the
full-vocabulary path picks: every tier holds the best candidates, so the best
allowed token is in the first tier that holds any allowed token.
"""

from __future__ import annotations

import math
import random
from typing import cast

import llama_cpp
import numpy as np
import numpy.typing as npt

from llm_local.backends.base import SamplingParams
from llm_local.embedded import clib

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
DEFAULT_TOP_K = 40
# Each next tier is this much wider. Where the grammar forces a literal (a key
# name, say) the model may rank the allowed tokens in the thousands.
WIDER_FACTOR = 16


class SamplingError(RuntimeError):
    """The samplers selected no usable token (a bug, not bad input)."""


class Candidates:
    """The candidate array every sampler works on; owned by the decode thread."""

    def __init__(self, n_vocab: int, top_k: int) -> None:
        self.n_vocab = n_vocab
        self._data = (llama_cpp.llama_token_data * n_vocab)()
        self._view: npt.NDArray[np.void] = np.frombuffer(
            memoryview(self._data).cast("B"), dtype=TOKEN_DATA
        )
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self.array = clib.TokenDataArray(data=self._data, size=n_vocab, selected=-1, sorted=False)
        tiers = []
        k = top_k
        while 0 < k < n_vocab:
            tiers.append(k)
            k *= WIDER_FACTOR
        self._tiers = [clib.sampler_top_k(k) for k in tiers]

    def logits(self, row: clib.FloatPtr) -> npt.NDArray[np.float32]:
        return np.ctypeslib.as_array(row, shape=(self.n_vocab,))

    def load(self, logits: npt.NDArray[np.float32]) -> None:
        """All tokens with their logits, unsorted."""
        self._view["id"] = self._ids
        self._view["logit"] = logits
        self._view["p"] = 0.0
        # Samplers may move `data` and shrink `size`: point them back at the full buffer.
        self.array.data = self._data
        self.array.size = self.n_vocab
        self.array.selected = -1
        self.array.sorted = False

    @property
    def tiers(self) -> int:
        """How many top-k tiers come before the whole vocabulary."""
        return len(self._tiers)

    def keep_top(self, tier: int) -> None:
        """Shrink the loaded candidates to a tier's top-k tokens (sorted)."""
        clib.sampler_apply(self._tiers[tier], self.array)

    def all_masked(self) -> bool:
        logits = self._view["logit"][: self.array.size]
        return bool(np.isneginf(logits).all())

    def chosen(self) -> int:
        """The token the last sampler selected; refuses an out-of-range or masked one."""
        index = int(self.array.selected)
        if not 0 <= index < int(self.array.size):
            raise SamplingError(f"sampler selected index {index} of {self.array.size}")
        entry = self.array.data[index]
        # ctypes reads an int32 field as int; the stub types it as c_int32.
        token = cast(int, entry.id)
        if not 0 <= token < self.n_vocab or not math.isfinite(entry.logit):
            raise SamplingError(f"sampler selected token {token} with logit {entry.logit}")
        return token

    def close(self) -> None:
        for sampler in self._tiers:
            clib.sampler_free(sampler)
        self._tiers.clear()


class SequenceSampler:
    """Temperature, top-p, seed and an optional grammar for one sequence."""

    def __init__(self, params: SamplingParams, grammar: clib.SamplerPtr | None) -> None:
        self._grammar = grammar
        self.greedy = params.temperature <= 0
        self._chain = clib.sampler_chain()
        if self.greedy:
            clib.sampler_chain_add(self._chain, clib.sampler_greedy())
        else:
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            clib.sampler_chain_add(self._chain, clib.sampler_temp(params.temperature))
            if params.top_p < 1.0:
                clib.sampler_chain_add(self._chain, clib.sampler_top_p(params.top_p))
            clib.sampler_chain_add(self._chain, clib.sampler_dist(seed & 0xFFFFFFFF))

    def sample(self, row: clib.FloatPtr, candidates: Candidates) -> int:
        logits = candidates.logits(row)
        if self._grammar is None and self.greedy:
            return int(np.argmax(logits))
        candidates.load(logits)
        if self._grammar is not None:
            for tier in range(candidates.tiers):
                candidates.keep_top(tier)
                if _mask(self._grammar, candidates):
                    break
                candidates.load(logits)
            else:
                _mask(self._grammar, candidates)
        clib.sampler_apply(self._chain, candidates.array)
        return candidates.chosen()

    def accept(self, token: int) -> None:
        """Advance the grammar past `token` (never an end-of-generation token)."""
        if self._grammar is not None:
            clib.sampler_accept(self._grammar, token)

    def close(self) -> None:
        if self._grammar is not None:
            clib.sampler_free(self._grammar)
            self._grammar = None
        clib.sampler_free(self._chain)


def _mask(grammar: clib.SamplerPtr, candidates: Candidates) -> bool:
    """Apply the grammar; False when it rejected every candidate."""
    clib.sampler_apply(grammar, candidates.array)
    # The grammar sets rejected logits to -inf in place and leaves `sorted` set. A
    # sampler trusting `sorted` would take index 0 as the best (maybe a masked
    # token): softmax turns into NaN and accepting the token aborts the process.
    candidates.array.sorted = False
    return not candidates.all_masked()
