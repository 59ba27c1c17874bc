"""The loaded GGUF: weights, vocabulary, chat template; read-only once loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llm_local.embedded import clib
from llm_local.embedded.chat_template import ChatTemplate


class ModelLoadError(RuntimeError):
    """llama.cpp could not load the GGUF file."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    path: Path
    ptr: clib.ModelPtr
    vocab: clib.VocabPtr
    n_vocab: int
    n_embd: int
    n_ctx_train: int
    add_bos: bool
    eog: frozenset[int]
    # Token id → the bytes it stands for (empty for control tokens), read once at load.
    pieces: tuple[bytes, ...]
    template: ChatTemplate
    description: str

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Token ids of `text`; `special` parses markers such as <|im_start|> as tokens."""
        return clib.tokenize(self.vocab, text, add_special=self.add_bos, parse_special=special)

    def count_tokens(self, text: str) -> int:
        """Tokens of plain text inside a generation (no BOS, markers taken literally)."""
        return len(clib.tokenize(self.vocab, text, add_special=False, parse_special=False))

    def free(self) -> None:
        clib.model_free(self.ptr)


def load_model(path: Path) -> LoadedModel:
    """Load the weights (memory-mapped) and read what decoding needs from the vocabulary."""
    clib.backend_init()
    params = clib.model_default_params()
    # Extra buffer types repack the weights for AMX on CPUs that advertise it; on the
    # Firecracker VMs we run on, those kernels die with SIGSEGV on any batch of more
    # than one token (llama-cpp-python's own `Llama` too). Plain CPU kernels instead.
    params.use_extra_bufts = False
    ptr = clib.model_load(str(path), params)
    if ptr is None:
        raise ModelLoadError(f"llama.cpp could not load the model file {path}")
    vocab = clib.model_vocab(ptr)
    n_vocab = clib.vocab_n_tokens(vocab)
    return LoadedModel(
        path=path,
        ptr=ptr,
        vocab=vocab,
        n_vocab=n_vocab,
        n_embd=clib.model_n_embd(ptr),
        n_ctx_train=clib.model_n_ctx_train(ptr),
        add_bos=clib.vocab_add_bos(vocab),
        eog=frozenset(t for t in range(n_vocab) if clib.vocab_is_eog(vocab, t)),
        pieces=tuple(clib.token_piece(vocab, t) for t in range(n_vocab)),
        template=ChatTemplate(
            clib.model_chat_template(ptr),
            bos_token=clib.vocab_text(vocab, clib.vocab_bos(vocab)),
            eos_token=clib.vocab_text(vocab, clib.vocab_eos(vocab)),
        ),
        description=clib.model_meta(ptr, "general.name") or path.stem,
    )
