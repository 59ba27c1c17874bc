"""env.example: every contract variable, only real settings, defaults as the services have them."""

from __future__ import annotations

import re
from typing import Any

from pydantic_settings import BaseSettings
from stack_harness import CONTRACT_VARIABLES, ROOT

from dm.settings import DmSettings
from gateway.settings import GatewaySettings
from llm_local.settings import LlmSettings
from voicectl.plan import StackSettings

SETTINGS: tuple[type[BaseSettings], ...] = (DmSettings, LlmSettings, GatewaySettings, StackSettings)
COMPOSE_ONLY = {
    "COMPOSE_PROFILES",
    "HF_TOKEN",
    "LLAMACPP_MODELS_DIR",
    "LLAMACPP_MODEL_FILE",
    "REDIS_PASSWORD",
    "REDIS_MAXMEMORY",
    "GATEWAY_PUBLISH_ADDRESS",
}
ASSIGNMENT = re.compile(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$")
# Defaults computed at start-up (all CPUs), or that the stack derives from the ports.
EXAMPLE_VALUES = {"LLM_N_THREADS"}


def example() -> dict[str, str]:
    values = {}
    for line in (ROOT / "env.example").read_text("utf-8").splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def defaults() -> dict[str, Any]:
    """Each setting's default as the first service that declares it has it."""
    found: dict[str, Any] = {}
    for settings in SETTINGS:
        for name, field in settings.model_fields.items():
            if field.default_factory is None:
                found.setdefault(name.upper(), field.default)
    return found


def test_every_contract_variable_is_in_env_example() -> None:
    assert set(CONTRACT_VARIABLES) <= set(example())


def test_env_example_names_only_real_settings() -> None:
    known = set(defaults()) | EXAMPLE_VALUES | COMPOSE_ONLY
    assert set(example()) - known == set()


def test_env_example_shows_the_defaults() -> None:
    expected = defaults()
    for name, value in example().items():
        if name in expected and name not in EXAMPLE_VALUES:
            default = expected[name]
            assert value == ("" if default is None else str(default)), name


def test_every_variable_the_compose_file_reads_is_explained() -> None:
    text = (ROOT / "docker-compose.yml").read_text("utf-8")
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert used - set(example()) == set()
