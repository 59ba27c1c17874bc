"""Chat formatting with the GGUF's template, or ChatML when it has none."""

from __future__ import annotations

import pytest

from llm_local.backends.base import InvalidRequest, Message
from llm_local.embedded.chat_template import ChatTemplate

SYSTEM, USER = Message("system", "Be brief."), Message("user", "Hi there")


def test_chatml_rendering_ends_with_the_generation_prompt() -> None:
    prompt = ChatTemplate(None, bos_token="", eos_token="").render([SYSTEM, USER])

    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_a_template_raising_an_exception_is_an_invalid_request() -> None:
    source = "{{ raise_exception('roles must alternate') }}"

    with pytest.raises(InvalidRequest, match="roles must alternate"):
        ChatTemplate(source, bos_token="", eos_token="").render([USER])
