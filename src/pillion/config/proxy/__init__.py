"""Models of the ``proxy`` section, one module per concern:

- ``listeners``: inbound, outbound and TCP listeners, request limits, original destination;
- ``routes``: routes, their matches, direct responses, weighted clusters, retry policies,
  rate limits;
- ``clusters``: clusters, outlier ejection, circuit breakers, retry budgets, upstream TLS;
- ``auth``: JWT providers, API keys, OIDC login, authorization by client certificate;
- ``tls``: TLS termination and its certificates;
- ``timeouts``, ``accesslog``; ``tokens``: the HTTP syntax they share.

Here: ``ProxyConfig``, the section itself, and the checks that span listeners and
clusters. The modules import downwards only, never this one: listeners > clusters >
routes > auth > tokens, with tls, timeouts and accesslog beside auth (an
import-linter contract checks it).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from pillion.config.proxy.accesslog import (
    ACCESS_LOG_FIELDS,
    AccessLogConfig,
    AccessLogField,
)
from pillion.config.proxy.auth import (
    ApiKeysConfig,
    AuthorizationConfig,
    JwtAlgorithm,
    JwtConfig,
    JwtProviderConfig,
    OidcConfig,
    OidcCookieConfig,
)
from pillion.config.proxy.clusters import (
    CircuitBreakerConfig,
    ClusterConfig,
    OutlierConfig,
    RetryBudgetConfig,
    UpstreamTlsConfig,
)
from pillion.config.proxy.listeners import (
    DEFAULT_OPAQUE_PORTS,
    HttpListenerBase,
    InboundListenerConfig,
    OriginalDestinationConfig,
    OutboundListenerConfig,
    RequestLimits,
    TcpListenerConfig,
)
from pillion.config.proxy.routes import (
    DirectResponseConfig,
    HeaderMatchConfig,
    RateLimitConfig,
    RetryPolicyConfig,
    RouteConfig,
    RouteMatchConfig,
    Routes,
    WeightedClusterConfig,
)
from pillion.config.proxy.timeouts import (
    Timeouts,
)
from pillion.config.proxy.tls import (
    CertificateConfig,
    TlsConfig,
)
from pillion.config.types import Section

__all__ = [
    "ACCESS_LOG_FIELDS",
    "DEFAULT_OPAQUE_PORTS",
    "AccessLogConfig",
    "AccessLogField",
    "ApiKeysConfig",
    "AuthorizationConfig",
    "CertificateConfig",
    "CircuitBreakerConfig",
    "ClusterConfig",
    "DirectResponseConfig",
    "HeaderMatchConfig",
    "HttpListenerBase",
    "InboundListenerConfig",
    "JwtAlgorithm",
    "JwtConfig",
    "JwtProviderConfig",
    "OidcConfig",
    "OidcCookieConfig",
    "OriginalDestinationConfig",
    "OutboundListenerConfig",
    "OutlierConfig",
    "ProxyConfig",
    "RateLimitConfig",
    "RequestLimits",
    "RetryBudgetConfig",
    "RetryPolicyConfig",
    "RouteConfig",
    "RouteMatchConfig",
    "Routes",
    "TcpListenerConfig",
    "Timeouts",
    "TlsConfig",
    "UpstreamTlsConfig",
    "WeightedClusterConfig",
]


class ProxyConfig(Section):
    """Inbound reverse proxy in front of the app. Disabled when absent."""

    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes that serve the listeners, sharing their ports with "
        "SO_REUSEPORT; a worker that dies is restarted. Default 1: one event loop "
        "serves tens of thousands of requests per second; raise it to the pod's CPUs.",
    )

    inbound: list[InboundListenerConfig] = Field(
        default_factory=lambda: [InboundListenerConfig()],
        description="Inbound listeners. Default: one on 0.0.0.0:15006 to the app.",
    )
    outbound: list[OutboundListenerConfig] = Field(
        default_factory=list,
        description="Outbound listeners the app calls to reach clusters. Default: none.",
    )
    clusters: list[ClusterConfig] = Field(
        default_factory=list, description="Upstream clusters for outbound listeners."
    )
    tcp: list[TcpListenerConfig] = Field(
        default_factory=list,
        description="TCP passthrough listeners (databases, brokers...). Default: none.",
    )
    access_log: AccessLogConfig | None = Field(
        default_factory=AccessLogConfig,
        description="Access log; `null` turns it off. Default: every request to stdout.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> ProxyConfig:
        listeners: list[InboundListenerConfig | OutboundListenerConfig | TcpListenerConfig] = [
            *self.inbound,
            *self.outbound,
            *self.tcp,
        ]
        names = [listener.name for listener in listeners]
        if len(set(names)) != len(names):
            raise ValueError("listener names must be distinct across inbound and tcp")
        addresses = [listener.listen for listener in listeners]
        if len(set(addresses)) != len(addresses):
            raise ValueError("two listeners on one address")
        clusters = [cluster.name for cluster in self.clusters]
        if len(set(clusters)) != len(clusters):
            raise ValueError("cluster names must be distinct")
        for listener in self.outbound:
            if listener.cluster is not None and listener.cluster not in clusters:
                raise ValueError(
                    f"outbound listener {listener.name!r}: no cluster {listener.cluster!r}"
                )
        http_listeners: list[InboundListenerConfig | OutboundListenerConfig] = [
            *self.inbound,
            *self.outbound,
        ]
        for http_listener in http_listeners:
            for index, route in enumerate(http_listener.routes):
                where = f"listener {http_listener.name!r}, routes[{index}]"
                named = [route.cluster] if route.cluster else []
                named += [weighted.cluster for weighted in route.weighted_clusters]
                for cluster in named:
                    if cluster not in clusters:
                        raise ValueError(f"{where}: no cluster {cluster!r}")
                if (
                    isinstance(http_listener, OutboundListenerConfig)
                    and not named
                    and route.direct_response is None
                    and http_listener.cluster is None
                ):
                    raise ValueError(f"{where}: name a cluster or a direct_response")
        return self
