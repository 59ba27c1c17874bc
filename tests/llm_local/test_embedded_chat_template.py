"""Chat formatting and the shared prompt prefixes worth caching."""

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


def test_prefixes_are_the_system_message_with_and_without_the_next_header() -> None:
    template = ChatTemplate(None, bos_token="", eos_token="")
    prompt = template.render([SYSTEM, USER])

    assert template.system_prefixes([SYSTEM, USER], prompt) == [
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n",
        "<|im_start|>system\nBe brief.<|im_end|>\n",
    ]


def test_no_prefix_without_a_leading_system_message() -> None:
    template = ChatTemplate(None, bos_token="", eos_token="")
    messages = [USER, Message("assistant", "Hello")]

    assert template.system_prefixes(messages, template.render(messages)) == []


def test_a_template_that_does_not_copy_content_keeps_the_system_prefix_only() -> None:
    source = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] | length }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    template = ChatTemplate(source, bos_token="", eos_token="")
    prompt = template.render([SYSTEM, USER])

    assert template.system_prefixes([SYSTEM, USER], prompt) == ["[system] 9\n"]


def test_a_template_raising_an_exception_is_an_invalid_request() -> None:
    source = "{{ raise_exception('roles must alternate') }}"

    with pytest.raises(InvalidRequest, match="roles must alternate"):
        ChatTemplate(source, bos_token="", eos_token="").render([USER])
