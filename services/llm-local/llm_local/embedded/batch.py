"""A `llama_batch` filled row by row, checked before llama.cpp sees it.

llama.cpp asserts (aborts the process) on some malformed batches, so token ids,
sequence ids, positions and the capacity are checked here and raise instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llm_local.embedded import clib


class BatchError(ValueError):
    """A row llama.cpp would reject or abort on."""


class TokenBatch:
    def __init__(self, capacity: int, n_seq_max: int, n_vocab: int) -> None:
        self.capacity = capacity
        self._n_seq_max = n_seq_max
        self._n_vocab = n_vocab
        self._batch = clib.batch_init(capacity, 1)
        self._tokens = np.ctypeslib.as_array(self._batch.token, shape=(capacity,))
        self._positions = np.ctypeslib.as_array(self._batch.pos, shape=(capacity,))
        self._seq_counts = np.ctypeslib.as_array(self._batch.n_seq_id, shape=(capacity,))
        self._outputs = np.ctypeslib.as_array(self._batch.logits, shape=(capacity,))
        self._seq_ids = self._batch.seq_id
        self.size = 0

    @property
    def free(self) -> int:
        return self.capacity - self.size

    def clear(self) -> None:
        self.size = 0

    def add(
        self,
        tokens: Sequence[int],
        first_pos: int,
        seq_id: int,
        *,
        output_last: bool,
        output_all: bool = False,
    ) -> int:
        """Append `tokens` of one sequence at consecutive positions; the last row's index.

        Output rows get logits (or embeddings): the last one, all of them, or none.
        """
        count = len(tokens)
        if count == 0 or count > self.free:
            raise BatchError(f"{count} tokens do not fit the {self.free} free rows of the batch")
        if not 0 <= seq_id < self._n_seq_max:
            raise BatchError(f"sequence id {seq_id} outside 0..{self._n_seq_max - 1}")
        if first_pos < 0:
            raise BatchError(f"negative position {first_pos}")
        if min(tokens) < 0 or max(tokens) >= self._n_vocab:
            raise BatchError(f"token id outside 0..{self._n_vocab - 1}")
        start, end = self.size, self.size + count
        self._tokens[start:end] = tokens
        self._positions[start:end] = np.arange(first_pos, first_pos + count)
        self._seq_counts[start:end] = 1
        self._outputs[start:end] = 1 if output_all else 0
        for row in range(start, end):
            self._seq_ids[row][0] = seq_id
        if output_last:
            self._outputs[end - 1] = 1
        self.size = end
        return end - 1

    def decode(self, ctx: clib.ContextPtr) -> int:
        """llama_decode over the rows added; its return code (0: success)."""
        if self.size == 0:
            raise BatchError("an empty batch")
        self._batch.n_tokens = self.size
        return clib.decode(ctx, self._batch)

    def close(self) -> None:
        clib.batch_free(self._batch)
