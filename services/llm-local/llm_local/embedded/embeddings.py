"""Sentence embeddings from a second, embedding-mode context on the same weights.

Created on first use: most deployments never ask for embeddings, and the
context costs memory. Mean pooling over the sequence, L2-normalised.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from llm_local.backends.base import Embeddings, InvalidRequest
from llm_local.embedded import clib
from llm_local.embedded.batch import TokenBatch
from llm_local.embedded.model import LoadedModel, ModelLoadError

MAX_SEQUENCES_PER_BATCH = 8


class EmbeddingContext:
    def __init__(self, model: LoadedModel, *, n_ctx: int, n_threads: int) -> None:
        self._model = model
        self._n_ctx = min(n_ctx, model.n_ctx_train)
        self._n_threads = n_threads
        self._lock = threading.Lock()
        self._ctx: clib.ContextPtr | None = None
        self._batch: TokenBatch | None = None

    def _open(self) -> tuple[clib.ContextPtr, TokenBatch]:
        if self._ctx is None or self._batch is None:
            params = clib.context_default_params()
            params.embeddings = True
            params.pooling_type = clib.POOLING_MEAN
            # Pooling needs a whole sequence in one micro-batch.
            params.n_ctx = params.n_batch = params.n_ubatch = self._n_ctx
            params.n_seq_max = MAX_SEQUENCES_PER_BATCH
            params.n_outputs_max_per_seq = 0  # every token is an output when pooling
            params.kv_unified = True
            params.n_threads = params.n_threads_batch = self._n_threads
            params.no_perf = True
            ctx = clib.context_new(self._model.ptr, params)
            if ctx is None:
                raise ModelLoadError("llama.cpp could not create the embedding context")
            self._ctx = ctx
            self._batch = TokenBatch(self._n_ctx, MAX_SEQUENCES_PER_BATCH, self._model.n_vocab)
        return self._ctx, self._batch

    def embed(self, inputs: Sequence[str]) -> Embeddings:
        """Blocking: run it in a worker thread."""
        tokenized = [self._model.tokenize(text, special=False) for text in inputs]
        for index, tokens in enumerate(tokenized):
            if not tokens:
                raise InvalidRequest(f"input {index} is empty")
            if len(tokens) > self._n_ctx:
                raise InvalidRequest(
                    f"input {index} has {len(tokens)} tokens; the limit is {self._n_ctx}"
                )
        vectors: list[list[float]] = []
        with self._lock:
            ctx, batch = self._open()
            start = 0
            while start < len(tokenized):
                group = self._next_group(tokenized, start, batch.capacity)
                vectors.extend(self._embed_group(ctx, batch, group))
                start += len(group)
        return Embeddings(vectors=vectors, prompt_tokens=sum(len(t) for t in tokenized))

    @staticmethod
    def _next_group(tokenized: list[list[int]], start: int, capacity: int) -> list[list[int]]:
        group: list[list[int]] = []
        used = 0
        for tokens in tokenized[start:]:
            if group and (used + len(tokens) > capacity or len(group) == MAX_SEQUENCES_PER_BATCH):
                break
            group.append(tokens)
            used += len(tokens)
        return group

    def _embed_group(
        self, ctx: clib.ContextPtr, batch: TokenBatch, group: list[list[int]]
    ) -> list[list[float]]:
        clib.memory_clear(clib.memory(ctx))
        batch.clear()
        for seq_id, tokens in enumerate(group):
            batch.add(tokens, 0, seq_id, output_last=True, output_all=True)
        code = batch.decode(ctx)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code} for embeddings")
        vectors = []
        for seq_id in range(len(group)):
            pooled = clib.embeddings_seq(ctx, seq_id)
            if pooled is None:
                raise RuntimeError(f"no pooled embedding for sequence {seq_id}")
            vector = np.ctypeslib.as_array(pooled, shape=(self._model.n_embd,)).astype(np.float64)
            norm = float(np.linalg.norm(vector))
            vectors.append((vector / norm if norm > 0 else vector).tolist())
        return vectors

    def close(self) -> None:
        with self._lock:
            if self._batch is not None:
                self._batch.close()
                self._batch = None
            if self._ctx is not None:
                clib.context_free(self._ctx)
                self._ctx = None
