"""dm on loopback with a real Redis and a scripted LLM, for dm and gateway tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from dm.api import create_app
from dm.settings import DmSettings
from support.servers import ServerThread
from voicectl.scripted_llm import ScriptedLLM


@dataclass
class DmStack:
    llm: ScriptedLLM
    llm_url: str  # the scripted LLM's OpenAI base URL (…/v1)
    dm_urls: list[str]  # one per dm replica
    settings: DmSettings

    @property
    def dm_url(self) -> str:
        return self.dm_urls[0]


def dm_settings(redis_url: str, llm_url: str, **overrides: Any) -> DmSettings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "llm_base_url": llm_url,
        "dm_turn_deadline_s": 2.0,
        # Tests queue exact LLM replies; a warm-up request would take one.
        "dm_llm_warm_up": False,
    }
    values.update(overrides)
    return DmSettings(_env_file=None, **values)  # type: ignore[call-arg]


@contextmanager
def dm_stack(
    redis_url: str, *, replicas: int = 1, llm: ScriptedLLM | None = None, **overrides: Any
) -> Iterator[DmStack]:
    """`replicas` dm apps on one Redis, all asking one scripted LLM (`llm`, or a new one)."""
    llm = llm or ScriptedLLM()
    with ExitStack() as stack:
        llm_server = stack.enter_context(ServerThread(llm.app))
        llm_url = llm_server.url + "/v1"
        settings = dm_settings(redis_url, llm_url, **overrides)
        urls = [
            stack.enter_context(ServerThread(create_app(settings))).url for _ in range(replicas)
        ]
        yield DmStack(llm=llm, llm_url=llm_url, dm_urls=urls, settings=settings)
