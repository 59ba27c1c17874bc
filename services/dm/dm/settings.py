"""dm settings: the contract's variables and dm's own tuning knobs."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from svckit.settings import ServiceSettings

Scoring = Literal["rubric", "llm"]


class DmSettings(ServiceSettings):
    redis_url: str = "redis://localhost:6379/0"
    llm_base_url: str = "http://localhost:8000/v1"
    llm_api_key: str = ""
    llm_model: str = ""  # empty: whatever llm-local serves
    dm_port: int = 8081
    dm_turn_deadline_s: float = Field(default=5.0, gt=0.1, le=60)
    dm_max_tokens: int = Field(default=96, ge=16, le=4096)
    dm_llm_temperature: float = Field(default=0.0, ge=0, le=2)
    # Decode each flow's system prompt in the LLM service at start-up (its prompt cache),
    # so the first turn of a flow does not pay the whole prefill inside its deadline.
    dm_llm_warm_up: bool = True

    dm_flows_dir: str = ""  # empty: the flows shipped with dm
    # Reply mode per flow, overriding the flow file: "generate" or "scripted" for every
    # flow, or "booking_mri=generate,interview_python_dev=scripted".
    dm_reply_mode: str = ""
    dm_timezone: str = "Europe/Moscow"  # what "today" and "tomorrow" mean
    # Pin the calendar day dm treats as today (demos, the dialog corpus); empty: the clock.
    dm_today: date | None = None
    # Phone region (ISO 3166 alpha-2) for calls and flows that name none; empty: from the
    # call's language (ru -> RU, en -> US).
    dm_default_region: str = Field(default="", pattern=r"^([A-Z]{2})?$")
    # The rules path: decide a turn without the LLM when the caller's words already decide
    # it. "on" or "off" for every flow, or per flow: "booking_mri=on,interview_python_dev=off".
    dm_rules: str = "on"
    # The key the gateway sends (Authorization: Bearer); empty: none, and dm listens on
    # loopback only.
    dm_api_key: str = ""
    # How interview answers are scored: "rubric" (each question's rubric, deterministic),
    # "llm" (a separate judge request per answer at temperature 0, asking for quotes), or
    # "auto": the rubric on the embedded CPU model, the judge on any other backend.
    dm_scoring: Literal["rubric", "llm", "auto"] = "auto"
    llm_backend: str = "embedded"  # the contract's LLM_BACKEND, for dm_scoring "auto"
    dm_judge_max_tokens: int = Field(default=160, ge=32, le=2048)

    dm_state_ttl_s: int = Field(
        default=86_400, ge=60
    )  # every call key expires after this idle time
    dm_history_turns: int = Field(default=8, ge=1, le=100)  # exchanges kept in call state
    # Turn results kept per call for retries (idempotency), and barge-ins kept per call.
    dm_turn_records: int = Field(default=64, ge=4, le=10_000)
    dm_interrupt_records: int = Field(default=32, ge=1, le=10_000)
    # How long an ended call's summary is kept after DELETE purged its transcript.
    dm_ended_retention_s: int = Field(default=3600, ge=1)
    # Earlier exchanges shown to the LLM. On the embedded CPU model a prompt token
    # costs ~8 ms of prefill and Russian ~0.84 tokens per character, so one exchange
    # costs ~0.5 s of the deadline; the step goal already says what was asked.
    # Raise it for bigger models.
    dm_prompt_history_turns: int = Field(default=0, ge=0, le=20)
    dm_redis_max_connections: int = Field(default=256, ge=4)
    # Every Redis command gives up after this: well under the turn deadline.
    dm_redis_timeout_s: float = Field(default=1.0, gt=0, le=10)
    dm_persist_reserve_s: float = Field(default=0.05, ge=0)  # deadline share kept for persisting

    def scoring(self) -> Scoring:
        if self.dm_scoring != "auto":
            return self.dm_scoring
        return "rubric" if self.llm_backend == "embedded" else "llm"

    def reply_mode_overrides(self) -> dict[str, str]:
        """Parse DM_REPLY_MODE; the key "*" applies to every flow."""
        return per_flow("DM_REPLY_MODE", self.dm_reply_mode, ("generate", "scripted"))

    def rules_overrides(self) -> dict[str, str]:
        """Parse DM_RULES; the key "*" applies to every flow."""
        return per_flow("DM_RULES", self.dm_rules, ("on", "off"))


def per_flow(name: str, spec: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """A setting given for every flow ("on") or per flow ("booking_mri=on,other=off")."""
    spec = spec.strip()
    if not spec:
        return {}
    items = [("*", spec)] if "=" not in spec else [i.partition("=")[::2] for i in spec.split(",")]
    overrides = {}
    for flow, value in items:
        if value.strip() not in allowed:
            raise ValueError(f"{name}: '{value.strip()}' is not one of {', '.join(allowed)}")
        overrides[flow.strip()] = value.strip()
    return overrides
