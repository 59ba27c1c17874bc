"""Typed wrappers over the few llama.cpp C functions this backend calls.

llama-cpp-python declares its ctypes functions through an untyped decorator, so
mypy sees every call as `Any`. Each wrapper here pins the argument and return
types, converts C results to Python values and turns NULL into None.
"""

from __future__ import annotations

import ctypes
import sys
from typing import NewType, TypeAlias

import llama_cpp

ModelPtr = NewType("ModelPtr", int)
VocabPtr = NewType("VocabPtr", int)
ContextPtr = NewType("ContextPtr", int)
MemoryPtr = NewType("MemoryPtr", int)
# Strings: ctypes pointer classes cannot be subscripted at run time.
SamplerPtr: TypeAlias = "ctypes._Pointer[llama_cpp.llama_sampler]"
FloatPtr: TypeAlias = "ctypes._Pointer[ctypes.c_float]"
TokenDataArray = llama_cpp.llama_token_data_array
Batch = llama_cpp.llama_batch
ModelParams = llama_cpp.llama_model_params
ContextParams = llama_cpp.llama_context_params

POOLING_MEAN = int(llama_cpp.LLAMA_POOLING_TYPE_MEAN)
FLASH_ATTN_DISABLED = int(llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)


_LOG_WARN, _LOG_ERROR, _LOG_CONTINUE = 3, 4, 5  # enum ggml_log_level (ggml.h)
_log_shown = False


def _forward_log(level: int, text: bytes, _user_data: int | None) -> None:
    global _log_shown
    _log_shown = level in (_LOG_WARN, _LOG_ERROR) or (level == _LOG_CONTINUE and _log_shown)
    if _log_shown:
        sys.stderr.write(text.decode("utf-8", "replace"))


# Module-level so the C side never calls a collected callback.
_LOG_CALLBACK = llama_cpp.llama_log_callback(_forward_log)


def backend_init() -> None:
    """Initialise llama.cpp; only its warnings and errors reach stderr (no load chatter)."""
    llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


# --- model and vocabulary ---------------------------------------------------


def model_default_params() -> ModelParams:
    params: ModelParams = llama_cpp.llama_model_default_params()
    return params


def model_load(path: str, params: ModelParams) -> ModelPtr | None:
    ptr: int | None = llama_cpp.llama_model_load_from_file(path.encode(), params)
    return ModelPtr(ptr) if ptr else None


def model_free(model: ModelPtr) -> None:
    llama_cpp.llama_model_free(model)


def model_vocab(model: ModelPtr) -> VocabPtr:
    return VocabPtr(int(llama_cpp.llama_model_get_vocab(model)))


def model_chat_template(model: ModelPtr) -> str | None:
    raw: bytes | None = llama_cpp.llama_model_chat_template(model, None)
    return raw.decode("utf-8") if raw else None


def model_meta(model: ModelPtr, key: str) -> str | None:
    buf = ctypes.create_string_buffer(512)
    n = int(llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, len(buf)))
    return buf.value.decode("utf-8", "replace") if n >= 0 else None


def model_n_embd(model: ModelPtr) -> int:
    return int(llama_cpp.llama_model_n_embd(model))


def model_n_ctx_train(model: ModelPtr) -> int:
    return int(llama_cpp.llama_model_n_ctx_train(model))


def vocab_n_tokens(vocab: VocabPtr) -> int:
    return int(llama_cpp.llama_vocab_n_tokens(vocab))


def vocab_is_eog(vocab: VocabPtr, token: int) -> bool:
    return bool(llama_cpp.llama_vocab_is_eog(vocab, token))


def vocab_add_bos(vocab: VocabPtr) -> bool:
    return bool(llama_cpp.llama_vocab_get_add_bos(vocab))


def vocab_text(vocab: VocabPtr, token: int) -> str:
    """The token's text as stored in the vocabulary (special tokens included)."""
    raw: bytes | None = llama_cpp.llama_vocab_get_text(vocab, token)
    return raw.decode("utf-8", "replace") if raw else ""


def vocab_bos(vocab: VocabPtr) -> int:
    return int(llama_cpp.llama_vocab_bos(vocab))


def vocab_eos(vocab: VocabPtr) -> int:
    return int(llama_cpp.llama_vocab_eos(vocab))


def tokenize(vocab: VocabPtr, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
    raw = text.encode("utf-8")
    capacity = len(raw) + 2
    buf = (llama_cpp.llama_token * capacity)()
    n = int(
        llama_cpp.llama_tokenize(vocab, raw, len(raw), buf, capacity, add_special, parse_special)
    )
    if n < 0:  # the buffer was too small; -n is the size needed
        capacity = -n
        buf = (llama_cpp.llama_token * capacity)()
        n = int(
            llama_cpp.llama_tokenize(
                vocab, raw, len(raw), buf, capacity, add_special, parse_special
            )
        )
    return list(buf[:n])


def token_piece(vocab: VocabPtr, token: int) -> bytes:
    """The bytes a token stands for; empty for control tokens."""
    buf = ctypes.create_string_buffer(64)
    n = int(llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False))
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = int(llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False))
    return buf.raw[:n]


# --- context, memory, batches ----------------------------------------------


def context_default_params() -> ContextParams:
    params: ContextParams = llama_cpp.llama_context_default_params()
    return params


def context_new(model: ModelPtr, params: ContextParams) -> ContextPtr | None:
    ptr: int | None = llama_cpp.llama_init_from_model(model, params)
    return ContextPtr(ptr) if ptr else None


def context_free(ctx: ContextPtr) -> None:
    llama_cpp.llama_free(ctx)


def n_ctx(ctx: ContextPtr) -> int:
    return int(llama_cpp.llama_n_ctx(ctx))


def n_batch(ctx: ContextPtr) -> int:
    return int(llama_cpp.llama_n_batch(ctx))


def max_parallel_sequences() -> int:
    return int(llama_cpp.llama_max_parallel_sequences())


def memory(ctx: ContextPtr) -> MemoryPtr:
    return MemoryPtr(int(llama_cpp.llama_get_memory(ctx)))


def memory_clear(mem: MemoryPtr) -> None:
    llama_cpp.llama_memory_clear(mem, True)


def memory_seq_rm(mem: MemoryPtr, seq_id: int) -> None:
    """Drop every cell of `seq_id` (a cell shared with another sequence stays for that one)."""
    llama_cpp.llama_memory_seq_rm(mem, seq_id, -1, -1)


def memory_seq_cp(mem: MemoryPtr, src: int, dst: int, p0: int, p1: int) -> None:
    llama_cpp.llama_memory_seq_cp(mem, src, dst, p0, p1)


def batch_init(n_tokens: int, n_seq_max: int) -> Batch:
    batch: Batch = llama_cpp.llama_batch_init(n_tokens, 0, n_seq_max)
    return batch


def batch_free(batch: Batch) -> None:
    llama_cpp.llama_batch_free(batch)


def decode(ctx: ContextPtr, batch: Batch) -> int:
    return int(llama_cpp.llama_decode(ctx, batch))


def logits_row(ctx: ContextPtr, row: int) -> FloatPtr | None:
    """Logits of the `row`-th token of the last batch (its index in the batch)."""
    ptr: FloatPtr = llama_cpp.llama_get_logits_ith(ctx, row)
    return ptr if ptr else None


def embeddings_seq(ctx: ContextPtr, seq_id: int) -> FloatPtr | None:
    ptr: FloatPtr = llama_cpp.llama_get_embeddings_seq(ctx, seq_id)
    return ptr if ptr else None


# --- samplers ----------------------------------------------------------------


def _checked(ptr: SamplerPtr, what: str) -> SamplerPtr:
    if not ptr:
        raise RuntimeError(f"llama.cpp could not create the {what} sampler")
    return ptr


def sampler_chain() -> SamplerPtr:
    params = llama_cpp.llama_sampler_chain_default_params()
    return _checked(llama_cpp.llama_sampler_chain_init(params), "chain")


def sampler_chain_add(chain: SamplerPtr, sampler: SamplerPtr) -> None:
    """The chain takes ownership of `sampler`."""
    llama_cpp.llama_sampler_chain_add(chain, sampler)


def sampler_greedy() -> SamplerPtr:
    return _checked(llama_cpp.llama_sampler_init_greedy(), "greedy")


def sampler_dist(seed: int) -> SamplerPtr:
    return _checked(llama_cpp.llama_sampler_init_dist(seed), "dist")


def sampler_temp(temperature: float) -> SamplerPtr:
    return _checked(llama_cpp.llama_sampler_init_temp(temperature), "temperature")


def sampler_top_p(p: float) -> SamplerPtr:
    return _checked(llama_cpp.llama_sampler_init_top_p(p, 1), "top-p")


def sampler_top_k(k: int) -> SamplerPtr:
    return _checked(llama_cpp.llama_sampler_init_top_k(k), "top-k")


def sampler_grammar(vocab: VocabPtr, gbnf: str) -> SamplerPtr | None:
    """None when llama.cpp cannot parse the grammar."""
    ptr: SamplerPtr = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    return ptr if ptr else None


def sampler_clone(sampler: SamplerPtr) -> SamplerPtr:
    return _checked(llama_cpp.llama_sampler_clone(sampler), "cloned")


def sampler_apply(sampler: SamplerPtr, candidates: TokenDataArray) -> None:
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))


def sampler_accept(sampler: SamplerPtr, token: int) -> None:
    llama_cpp.llama_sampler_accept(sampler, token)


def sampler_free(sampler: SamplerPtr) -> None:
    llama_cpp.llama_sampler_free(sampler)
