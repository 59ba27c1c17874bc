"""`python -m llama_cpp.server`, unchanged but for llama.cpp's AMX weight repacking.

On this VM the AMX kernels crash (SIGSEGV) on any prompt longer than one token,
so the peer's `Llama` gets the same plain CPU kernels llm-local uses:

    python -m bench.llm_local.peer_server --model M.gguf --n_threads 2 --port P
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_cpp.llama_cpp as llama_lib
from llama_cpp.server.__main__ import main

_default_model_params = llama_lib.llama_model_default_params


def model_params_without_extra_buffers() -> Any:
    params = _default_model_params()
    params.use_extra_bufts = False
    return params


def patch() -> None:
    """Make every `Llama()` created afterwards load without extra buffer types."""
    llama_lib.llama_model_default_params = model_params_without_extra_buffers


if __name__ == "__main__":
    patch()
    run_server: Callable[[], None] = main  # typed here: llama_cpp annotates none of it
    run_server()
