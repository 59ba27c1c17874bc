"""Gateway settings: the contract's variables and the gateway's own limits."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator, model_validator

from svckit.server import EdgeLimits
from svckit.settings import ServiceSettings, is_loopback

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class GatewaySettings(ServiceSettings):
    dm_url: str = "http://localhost:8081"
    dm_api_key: str = ""  # sent to dm as `Authorization: Bearer …` when set
    gateway_api_keys: str = ""  # comma-separated Bearer keys; empty: auth off, loopback only
    gateway_port: int = 8080

    # Token buckets: every REST request and every client WebSocket message costs one token
    # from its key's bucket and, when it names a call, from that key's bucket for the call.
    # A phone bridge carries many calls on one key; one call sends a few ASR partials a second.
    gateway_key_rate: float = Field(default=500.0, gt=0)  # tokens per second, per key
    gateway_key_burst: float = Field(default=1000.0, ge=1)
    gateway_call_rate: float = Field(default=20.0, gt=0)  # tokens per second, per key and call
    gateway_call_burst: float = Field(default=60.0, ge=1)

    # Before auth, at the door (svckit.server): a request head's size and time, connections.
    gateway_max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # over it: 431
    gateway_header_timeout_s: float = Field(default=5.0, gt=0)  # a head slower: closed
    gateway_body_timeout_s: float = Field(default=10.0, gt=0)  # a body slower: 408
    gateway_max_connections: int = Field(default=4096, ge=1)  # sockets included; over it: 503
    # REST requests handled at once (streams included); over it: 503 with Retry-After.
    gateway_max_in_flight: int = Field(default=512, ge=1)
    gateway_max_sockets_per_key: int = Field(default=1000, ge=1)  # over it: close 1008

    # dm's own turn deadline (DM_TURN_DEADLINE_S, 5 s) ends a turn well before this.
    gateway_dm_timeout_s: float = Field(default=10.0, gt=0)
    gateway_dm_max_connections: int = Field(default=1024, ge=1)  # requests to dm at once
    gateway_ws_start_timeout_s: float = Field(default=10.0, gt=0)  # handshake to call.start
    gateway_ws_idle_timeout_s: float = Field(default=600.0, gt=0)  # no client frame for this long
    gateway_ws_send_timeout_s: float = Field(default=10.0, gt=0)  # a client that stops reading
    # At most one `user.partial` forwarded to dm per call in this interval; the latest wins.
    gateway_partial_interval_s: float = Field(default=0.25, ge=0)

    # /readyz and /metrics: with keys configured they need one, except from these networks.
    gateway_ops_networks: str = "127.0.0.0/8,::1/128"

    @property
    def api_keys(self) -> frozenset[str]:
        return frozenset(key.strip() for key in self.gateway_api_keys.split(",") if key.strip())

    @property
    def ops_networks(self) -> tuple[Network, ...]:
        return tuple(
            ipaddress.ip_network(net.strip())
            for net in self.gateway_ops_networks.split(",")
            if net.strip()
        )

    @property
    def edge_limits(self) -> EdgeLimits:
        return EdgeLimits(
            max_head_bytes=self.gateway_max_header_bytes,
            head_timeout_s=self.gateway_header_timeout_s,
            body_timeout_s=self.gateway_body_timeout_s,
            max_connections=self.gateway_max_connections,
        )

    @field_validator("dm_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"DM_URL must be an http:// or https:// URL, not '{url}'")
        return url

    @field_validator("gateway_ops_networks")
    @classmethod
    def _networks(cls, networks: str) -> str:
        for net in networks.split(","):
            if net.strip():
                try:
                    ipaddress.ip_network(net.strip())
                except ValueError:
                    raise ValueError(f"GATEWAY_OPS_NETWORKS: '{net}' is not a network") from None
        return networks

    @model_validator(mode="after")
    def _no_open_door(self) -> GatewaySettings:
        if not self.api_keys and not is_loopback(self.host):
            raise ValueError(
                f"GATEWAY_API_KEYS is empty (auth off): refusing to listen on '{self.host}';"
                " set keys or bind a loopback address"
            )
        return self
