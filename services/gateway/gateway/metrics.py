"""The gateway's Prometheus metrics, on a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2,
    3,
    5,
    10,
)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.backchannel_seconds = Histogram(
            "gateway_backchannel_seconds",
            "From user.final received to its backchannel queued for the client",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_delta_seconds = Histogram(
            "gateway_first_delta_seconds",
            "From user.final received to the first reply.delta queued for the client",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.turns = Counter(
            "gateway_turns", "Socket turns by how they ended", ["outcome"], registry=r
        )
        self.barge_ins = Counter(
            "gateway_barge_ins", "Barge-ins by what triggered them", ["trigger"], registry=r
        )
        self.active_sockets = Gauge(
            "gateway_active_sockets", "Call WebSockets open now", registry=r
        )
        self.errors = Counter(
            "gateway_errors", "Error messages and error responses by code", ["code"], registry=r
        )
        self.transfers = Counter(
            "gateway_transfers",
            "Calls handed to a person (call.transfer sent), by reason",
            ["reason"],
            registry=r,
        )
        self.partials = Counter(
            "gateway_partials",
            "user.partial texts: forwarded to dm, coalesced into a later one, refused by dm",
            ["outcome"],
            registry=r,
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight", "REST requests being handled now", registry=r
        )
        self.closes = Counter(
            "gateway_socket_closes",
            "Sockets closed by the server, by close code",
            ["code"],
            registry=r,
        )
