"""Listeners: inbound (clients to the app), outbound (the app to clusters, or to
wherever traffic capture says it was going) and plain TCP, with the request limits
of the HTTP ones."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pillion.config.proxy.auth import (
    ApiKeysConfig,
    AuthorizationConfig,
    JwtConfig,
    OidcConfig,
)
from pillion.config.proxy.clusters import RetryBudgetConfig
from pillion.config.proxy.routes import RateLimitConfig, Routes
from pillion.config.proxy.timeouts import Timeouts
from pillion.config.proxy.tls import TlsConfig
from pillion.config.proxy.tokens import HEADER_NAME, UpgradeProtocol
from pillion.config.types import Listen, ListenAddress, Port, Section
from pillion.config.units import Duration, Size

__all__ = [
    "DEFAULT_OPAQUE_PORTS",
    "Http2Config",
    "HttpListenerBase",
    "InboundListenerConfig",
    "OriginalDestinationConfig",
    "OutboundListenerConfig",
    "RequestLimits",
    "TcpListenerConfig",
]


class RequestLimits(Section):
    """Limits on what a client may send; each has its own status code."""

    max_header_size: Size = Field(
        32 * 1024,
        description="Largest request line plus headers, in bytes; larger gets 431. Default "
        "32KiB: nginx's 4x8KiB buffers, enough for large cookies and JWTs.",
    )
    max_headers: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Most header fields in a request; more gets 431. Default 100, as "
        "Envoy's and Go's net/http.",
    )
    max_uri_size: Size = Field(
        8 * 1024,
        description="Longest request target (path and query), in bytes; longer gets 414. "
        "Default 8KiB, as common CDNs and servers.",
    )
    max_body_size: Size = Field(
        0,
        description="Largest request body in bytes; larger gets 413 (before the app sees "
        "it when Content-Length says so). Default 0: no limit, because bodies are "
        "streamed and the app knows what it accepts (nginx's 1m default breaks uploads).",
    )


class Http2Config(Section):
    """HTTP/2 on a listener: how many streams a client may have, and how much it may
    send ahead (flow-control windows)."""

    max_concurrent_streams: int = Field(
        100,
        ge=1,
        le=2**31 - 1,
        description="Streams a client connection may have open at once "
        "(SETTINGS_MAX_CONCURRENT_STREAMS). Default 100, the RFC's recommended minimum "
        "and what grpc-go and nginx (128) advertise.",
    )
    initial_stream_window: Size = Field(
        1024 * 1024,
        ge=65535,
        le=2**31 - 1,
        description="Bytes of request body a stream may send before Pillion passed them "
        "on (SETTINGS_INITIAL_WINDOW_SIZE). Default 1MiB: uploads at full speed on a "
        "pod's network, while a stalled app holds at most this per stream.",
    )
    initial_connection_window: Size = Field(
        16 * 1024 * 1024,
        ge=65535,
        le=2**31 - 1,
        description="The same for all streams of a connection together. Default 16MiB.",
    )


class HttpListenerBase(Section):
    """What inbound and outbound listeners share, both serving HTTP."""

    limits: RequestLimits = Field(default_factory=RequestLimits, description="Request limits.")
    protocols: list[Literal["http1", "http2"]] = Field(
        ["http1", "http2"],
        description="The HTTP versions clients may speak. With TLS, ALPN offers `h2` "
        "and `http/1.1` as listed; in cleartext, a connection that opens with the "
        "HTTP/2 preface is HTTP/2 (prior knowledge), any other is HTTP/1.1, on the same "
        "port (as Envoy's `codec_type: AUTO`). Default: both.",
    )
    http2: Http2Config = Field(default_factory=Http2Config, description="HTTP/2 settings.")
    upgrades: list[UpgradeProtocol] = Field(
        ["websocket"],
        description="The `Upgrade` protocols a request may switch to (RFC 9110 §7.8), "
        "lower case, e.g. `websocket`; forwarded only once the request passed every check "
        "(identity, JWT, API key, rate limit, route). Any other upgrade is removed from the "
        "request, which is then served as plain HTTP/1.1, and so is an upgrade request "
        "with a body. `h2c` is never allowed: HTTP/2 comes by prior knowledge or ALPN.",
    )

    @field_validator("protocols")
    @classmethod
    def _some_protocol(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one of http1, http2")
        if len(set(value)) != len(value):
            raise ValueError("each protocol once")
        return value


class InboundListenerConfig(HttpListenerBase):
    """One inbound listener: accepts clients, forwards to the app."""

    name: str = Field(
        "inbound",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Name of the listener in metrics and the access log.",
    )
    listen: Listen = Field(
        ListenAddress("0.0.0.0", 15006),
        description="Address to accept clients on. Default 0.0.0.0:15006, Istio's inbound port.",
    )
    upstream: Listen | None = Field(
        None,
        description="Where the app listens. Default: `app.host`:`app.port`.",
    )
    max_connections: int = Field(
        10_000,
        ge=1,
        description="Most client connections at once; more are closed at accept. "
        "Default 10000: bounded memory (a few KiB each) with room for bursts.",
    )
    upstream_max_idle: int = Field(
        128,
        ge=0,
        description="Most idle keep-alive connections to the app kept in the pool. "
        "Default 128: enough for the concurrency of one worker.",
    )
    rate_limit: RateLimitConfig | None = Field(
        None,
        description="Local rate limit; over it, 429 with `Retry-After` and flag RL, and "
        "the app never sees the request. Default: none.",
    )
    routes: Routes = Field(
        default_factory=list,
        description="Routes, first match wins; a request no route matches gets 404 (NR). "
        "Default: none, everything goes to the upstream.",
    )
    retry_budget: RetryBudgetConfig = Field(
        default_factory=RetryBudgetConfig,
        description="The cap on retries to the upstream (routes with a `retry` policy).",
    )
    tls: TlsConfig | None = Field(None, description="TLS termination. Default: plain HTTP.")
    identity_header: str = Field(
        "x-pillion-peer-identity",
        pattern=HEADER_NAME,
        description="Header carrying the caller's certificate identity to the app. A "
        "copy sent by the client is always removed first, on every listener.",
    )
    jwt: JwtConfig | None = Field(
        None, description="JWT authentication of requests. Default: none."
    )
    api_keys: ApiKeysConfig | None = Field(
        None, description="API key authentication of requests. Default: none."
    )
    oidc: OidcConfig | None = Field(
        None,
        description="A login for people (OpenID Connect): browsers without a session "
        "are sent to the provider. Default: none.",
    )
    authorization: AuthorizationConfig | None = Field(
        None,
        description="Callers allowed on this listener, by certificate identity; needs "
        "`tls.client_ca`. Default: anyone who completes the handshake.",
    )

    @model_validator(mode="after")
    def _authorization_needs_client_certificates(self) -> InboundListenerConfig:
        uses = self.authorization is not None or any(r.authorization for r in self.routes)
        if uses and (self.tls is None or self.tls.client_ca is None):
            raise ValueError("authorization needs client certificates: set tls.client_ca")
        if self.jwt is None and any(r.requires("jwt") for r in self.routes):
            raise ValueError("a route requires a JWT but the listener has no `jwt` providers")
        if self.api_keys is None and any(r.requires("api_key") for r in self.routes):
            raise ValueError("a route requires an API key but the listener has no `api_keys`")
        if self.oidc is None and any(r.requires("oidc") for r in self.routes):
            raise ValueError("a route requires a login but the listener has no `oidc`")
        return self

    timeouts: Timeouts = Field(default_factory=Timeouts, description="Timeouts.")


# Ports whose protocols speak first from the server, or whose first bytes may look
# like HTTP (linkerd's default opaque ports): SMTP, MySQL, Galera, PostgreSQL, Redis,
# Elasticsearch transport, memcached.
DEFAULT_OPAQUE_PORTS = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211]


class OriginalDestinationConfig(Section):
    """Connections the app made to anywhere, redirected here by ``pillion iptables
    --mode all``: each goes where the app sent it (``SO_ORIGINAL_DST``)."""

    opaque_ports: list[Port] = Field(
        default_factory=lambda: list(DEFAULT_OPAQUE_PORTS),
        description="Destination ports passed through as bytes, without waiting for "
        "the client to speak: protocols where the server speaks first, or whose first "
        "bytes could pass for HTTP. Default: 25, 587, 3306, 4444, 5432, 6379, 9300, "
        "11211 (linkerd's list).",
    )
    detect_timeout: Duration = Field(
        1.0,
        description="How long to wait for a connection's first bytes to tell HTTP from "
        "anything else; a connection still silent then is passed through as bytes (a "
        "server-first protocol on a port missing from `opaque_ports` is delayed this "
        "long). Default 1s.",
    )
    connect_timeout: Duration = Field(
        2.0, description="Longest time to connect to the original destination. Default 2s."
    )
    request_timeout: Duration = Field(
        0.0,
        description="Longest time for an HTTP request to the original destination, "
        "from its headers to the end of the response (then 504, flag UT). Default 0: "
        "none, as without Pillion (long polls and streams to unknown services keep working).",
    )
    idle_timeout: Duration = Field(
        3600.0,
        description="A passed-through connection with no byte either way for this long "
        "is closed. Default 1h, as for `tcp` listeners.",
    )
    max_idle_per_destination: int = Field(
        128,
        ge=0,
        description="Idle keep-alive connections kept per destination. Default 128, as "
        "for clusters (measured: 32 cut captured throughput by 5x under 64 connections).",
    )
    max_destinations: int = Field(
        1024,
        ge=1,
        description="Most destinations with a keep-alive pool at once; past it, the "
        "least recently added pool is retired. Default 1024.",
    )


class OutboundListenerConfig(HttpListenerBase):
    """An outbound listener: the app calls it, Pillion forwards to a cluster."""

    name: str = Field(
        "outbound",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Name of the listener in metrics and the access log.",
    )
    listen: Listen = Field(
        ListenAddress("127.0.0.1", 15001),
        description="Address the app calls. Default 127.0.0.1:15001, loopback only.",
    )
    cluster: str | None = Field(
        None,
        description="Send every request to this cluster (a port per service). Default: "
        "pick the cluster named by the request's host (`Host`, or the URL when the app "
        "uses Pillion as its `http_proxy`); an unknown host gets 404 with flag NR.",
    )
    max_connections: int = Field(10_000, ge=1, description="Most app connections at once.")
    routes: Routes = Field(
        default_factory=list,
        description="Routes, first match wins (each naming a cluster or answering "
        "directly). Default: none, the cluster comes from `cluster` or the host.",
    )
    original_destination: OriginalDestinationConfig | None = Field(
        None,
        description="Accept connections redirected by traffic capture (`pillion "
        "iptables --mode all`): HTTP requests no route or cluster claims go to where "
        "the app sent them, and connections that are not HTTP are passed through as "
        "bytes. Default: off (connections reach this listener only by being called).",
    )

    @model_validator(mode="after")
    def _no_inbound_checks(self) -> OutboundListenerConfig:
        for index, route in enumerate(self.routes):
            for key in ("jwt_required", "api_key_required", "oidc_required", "auth",
                        "authorization"):  # fmt: skip
                if getattr(route, key) is not None:
                    raise ValueError(
                        f"routes[{index}].{key}: an outbound listener checks no callers "
                        "(the app is the only one); it applies to inbound routes"
                    )
        return self


class TcpListenerConfig(Section):
    """A plain TCP (L4) listener: every byte forwarded both ways, nothing parsed."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Name of the listener in metrics and logs.",
    )
    listen: Listen = Field(description="Address to accept clients on.")
    upstream: Listen = Field(description="Address to forward each connection to.")
    connect_timeout: Duration = Field(
        2.0,
        description="Longest time to connect to the upstream; then the client's "
        "connection is closed. Default 2s, as for HTTP.",
    )
    idle_timeout: Duration = Field(
        3600.0,
        description="A connection with no byte in either direction for this long is "
        "closed. Default 1h (Envoy's tcp_proxy default): long-lived protocols "
        "(databases, brokers) idle for minutes.",
    )
    max_connections: int = Field(
        10_000, ge=1, description="Most client connections at once; more are closed at accept."
    )
