"""Gateway settings: the contract's variables and the gateway's own limits."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from svckit.settings import ServiceSettings, is_loopback


class GatewaySettings(ServiceSettings):
    dm_url: str = "http://localhost:8081"
    gateway_api_keys: str = ""  # comma-separated Bearer keys; empty: auth off, loopback only
    gateway_port: int = 8080

    # Token buckets: every REST request and every client WebSocket message costs one token
    # from its key's bucket and, when it names a call, from that call's bucket. A phone
    # bridge carries many calls on one key; one call sends a few ASR partials a second.
    gateway_key_rate: float = Field(default=500.0, gt=0)  # tokens per second, per key
    gateway_key_burst: float = Field(default=1000.0, ge=1)
    gateway_call_rate: float = Field(default=20.0, gt=0)  # tokens per second, per call
    gateway_call_burst: float = Field(default=60.0, ge=1)

    # dm's own turn deadline (DM_TURN_DEADLINE_S, 5 s) ends a turn well before this.
    gateway_dm_timeout_s: float = Field(default=10.0, gt=0)
    gateway_dm_max_connections: int = Field(default=1024, ge=1)  # requests to dm at once
    gateway_ws_idle_timeout_s: float = Field(default=600.0, gt=0)  # no client frame for this long
    gateway_ws_send_timeout_s: float = Field(default=10.0, gt=0)  # a client that stops reading

    @property
    def api_keys(self) -> frozenset[str]:
        return frozenset(key.strip() for key in self.gateway_api_keys.split(",") if key.strip())

    @field_validator("dm_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"DM_URL must be an http:// or https:// URL, not '{url}'")
        return url

    @model_validator(mode="after")
    def _no_open_door(self) -> GatewaySettings:
        if not self.api_keys and not is_loopback(self.host):
            raise ValueError(
                f"GATEWAY_API_KEYS is empty (auth off): refusing to listen on '{self.host}';"
                " set keys or bind a loopback address"
            )
        return self
