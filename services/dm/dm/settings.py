"""dm settings: the contract's variables and dm's own tuning knobs."""

from __future__ import annotations

from pydantic import Field

from svckit.settings import ServiceSettings


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

    dm_state_ttl_s: int = Field(
        default=86_400, ge=60
    )  # every call key expires after this idle time
    dm_history_turns: int = Field(default=8, ge=1, le=100)  # exchanges kept in call state
    # Earlier exchanges shown to the LLM. On the embedded CPU model a prompt token
    # costs ~8 ms of prefill and Russian ~0.84 tokens per character, so one exchange
    # costs ~0.5 s of the deadline; the step goal already says what was asked.
    # Raise it for bigger models.
    dm_prompt_history_turns: int = Field(default=0, ge=0, le=20)
    dm_redis_max_connections: int = Field(default=256, ge=4)
    dm_persist_reserve_s: float = Field(default=0.05, ge=0)  # deadline share kept for persisting

    def reply_mode_overrides(self) -> dict[str, str]:
        """Parse DM_REPLY_MODE; the key "*" applies to every flow."""
        spec = self.dm_reply_mode.strip()
        if not spec:
            return {}
        if "=" not in spec:
            return {"*": _check_mode(spec)}
        overrides = {}
        for item in spec.split(","):
            flow, _, mode = item.partition("=")
            overrides[flow.strip()] = _check_mode(mode.strip())
        return overrides


def _check_mode(mode: str) -> str:
    if mode not in ("generate", "scripted"):
        raise ValueError(f"DM_REPLY_MODE: '{mode}' is not 'generate' or 'scripted'")
    return mode
