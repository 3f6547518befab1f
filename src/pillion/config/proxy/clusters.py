"""Clusters the outbound listeners balance across: endpoints, outlier ejection,
circuit breaking, the retry budget, and TLS to the endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pillion.config.proxy.routes import RetryPolicyConfig
from pillion.config.proxy.timeouts import Timeouts
from pillion.config.types import Listen, Section
from pillion.config.units import Duration

__all__ = [
    "CircuitBreakerConfig",
    "ClusterConfig",
    "OutlierConfig",
    "RetryBudgetConfig",
    "UpstreamTlsConfig",
]


class RetryBudgetConfig(Section):
    """A cap on retries, so they never amplify an outage: a retry is allowed while
    retries in flight stay under `ratio` of the requests in flight, or while fewer
    than `min_per_second` retries were made this second."""

    ratio: float = Field(
        0.2, ge=0.0, le=1.0, description="Retries in flight per request in flight. Default 0.2."
    )
    min_per_second: int = Field(
        10,
        ge=0,
        description="Retries per second always allowed, so a quiet service can retry. Default 10.",
    )


class OutlierConfig(Section):
    """Ejecting an endpoint that keeps failing, for a time that grows each time."""

    consecutive_errors: int = Field(
        5,
        ge=1,
        description="5xx answers or gateway errors (refused, reset, timeout) in a row "
        "that eject an endpoint. Default 5, as Envoy.",
    )
    base_ejection: Duration = Field(
        30.0,
        description="How long a first ejection lasts; the n-th lasts n times this. Default 30s.",
    )
    max_ejection: Duration = Field(300.0, description="The longest ejection. Default 5m.")
    max_ejected_percent: int = Field(
        50,
        ge=0,
        le=100,
        description="Most endpoints (in percent) out at once, so ejection never takes "
        "the whole cluster down. Default 50.",
    )


class CircuitBreakerConfig(Section):
    """Caps that shed load at once (503, flag UO) instead of queueing into an outage."""

    max_active_requests: int = Field(
        1024, ge=1, description="Most requests in flight to the cluster. Default 1024, as Envoy."
    )
    max_connections: int = Field(
        1024, ge=1, description="Most connections open to the cluster. Default 1024, as Envoy."
    )
    max_pending_requests: int = Field(
        1024,
        ge=0,
        description="Most requests waiting for a connection while `max_connections` are "
        "open; more get 503 (UO). Default 1024, as Envoy.",
    )
    max_active_retries: int = Field(
        64,
        ge=0,
        description="Most retries in flight at once, whatever the budget says. Default 64.",
    )


class UpstreamTlsConfig(Section):
    """TLS to the cluster's endpoints (mTLS origination): the server is verified
    against `ca`, and the workload certificate is presented."""

    ca: str = Field(description="PEM bundle of the CAs the server's certificate must chain to.")
    cert: str | None = Field(None, description="PEM file: the certificate to present (mTLS).")
    key: str | None = Field(None, description="PEM file: its private key.")
    server_name: str | None = Field(
        None,
        description="SNI, and the name the server's certificate must carry when "
        "`identities` is empty. Default: the endpoint's host.",
    )
    identities: list[str] = Field(
        default_factory=list,
        description="Accepted server identities (SPIFFE ID, else DNS name, else CN), "
        "instead of the host name check, e.g. `spiffe://cluster.local/ns/pay/sa/api`.",
    )
    min_version: Literal["1.2", "1.3"] = Field("1.2", description="Oldest TLS version.")

    @model_validator(mode="after")
    def _cert_with_key(self) -> UpstreamTlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("set both cert and key, or neither")
        return self


class ClusterConfig(Section):
    """A named group of endpoints that outbound requests are balanced across."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="The cluster's name; with Host routing, the host name that selects it.",
    )
    endpoints: list[Listen] = Field(
        min_length=1, description="Addresses (`host:port`) of the cluster's servers."
    )
    balancing: Literal["round_robin", "least_request"] = Field(
        "least_request",
        description="How requests spread: in turn, or to the less busy of two random "
        "endpoints. Default least_request (Envoy's), which copes with slow endpoints.",
    )
    outliers: OutlierConfig = Field(default_factory=OutlierConfig, description="Outlier ejection.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Timeouts to the cluster.")
    circuit_breaker: CircuitBreakerConfig = Field(
        default_factory=CircuitBreakerConfig, description="Load-shedding caps."
    )
    retry: RetryPolicyConfig | None = Field(
        None,
        description="Retry policy of requests to this cluster, unless their route has "
        "its own. Default: none.",
    )
    retry_budget: RetryBudgetConfig = Field(
        default_factory=RetryBudgetConfig, description="The cap on this cluster's retries."
    )
    tls: UpstreamTlsConfig | None = Field(
        None, description="TLS (and mTLS) to the endpoints. Default: plain HTTP."
    )
    protocol: Literal["http1", "http2", "auto"] = Field(
        "http1",
        description="The HTTP version spoken to the endpoints, whatever the client's: "
        "`http2` (with TLS, by ALPN `h2`; in cleartext, prior knowledge: what gRPC "
        "servers take), `http1`, or `auto`: ALPN decides on TLS (`h2` preferred), "
        "HTTP/1.1 in cleartext. HTTP/2 connections carry many requests at once, up to "
        "the endpoint's SETTINGS_MAX_CONCURRENT_STREAMS each. Default http1.",
    )
    dns_refresh: Duration = Field(
        5.0,
        description="How often endpoint host names are resolved again; every address "
        "of a name is an endpoint. When a name stops resolving, its last addresses are "
        "kept (and a warning logged). Default 5s, as Envoy.",
    )
    max_idle_per_endpoint: int = Field(
        128,
        ge=0,
        description="Idle keep-alive connections kept per endpoint. Default 128, as for "
        "inbound: fewer than the callers' concurrency means a new connection per request "
        "(measured: 32 halved outbound throughput under 64 connections).",
    )
