"""Models of the ``proxy`` section: inbound listeners, their limits, timeouts, access log."""

from __future__ import annotations

import re
import typing
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from pillion.config.types import Listen, ListenAddress, Port
from pillion.config.units import Duration, Size

__all__ = [
    "ACCESS_LOG_FIELDS",
    "AccessLogConfig",
    "ApiKeysConfig",
    "AuthorizationConfig",
    "CertificateConfig",
    "CircuitBreakerConfig",
    "ClusterConfig",
    "DirectResponseConfig",
    "HeaderMatchConfig",
    "InboundListenerConfig",
    "JwtConfig",
    "JwtProviderConfig",
    "OutboundListenerConfig",
    "OutlierConfig",
    "ProxyConfig",
    "RateLimitConfig",
    "RequestLimits",
    "RetryBudgetConfig",
    "RetryPolicyConfig",
    "RouteConfig",
    "RouteMatchConfig",
    "TcpListenerConfig",
    "Timeouts",
    "TlsConfig",
    "UpstreamTlsConfig",
    "WeightedClusterConfig",
]

AccessLogField = Literal[
    "time",
    "listener",
    "client",
    "method",
    "path",
    "protocol",
    "code",
    "flags",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream_ms",
    "request_id",
    "traceparent",
    "user_agent",
    "route",
    "cluster",
    "upstream",
    "retries",
    "identity",
]
ACCESS_LOG_FIELDS: tuple[AccessLogField, ...] = typing.get_args(AccessLogField)


_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestLimits(_Section):
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


class Timeouts(_Section):
    """Time limits of a listener; each failure has its status and response flag."""

    header: Duration = Field(
        10.0,
        description="Longest time to receive a request's headers once it has begun; then "
        "408 and close (slowloris). Default 10s: a real client sends headers at once.",
    )
    connect: Duration = Field(
        2.0,
        description="Longest time to connect to the upstream; then 503 with flag UF. "
        "Default 2s: the app is on localhost, a slow connect means it is overloaded.",
    )
    request: Duration = Field(
        60.0,
        description="Longest time from a request's headers to the end of the response; "
        "then 504 with flag UT (or a reset if the response had begun). Default 60s.",
    )
    idle: Duration = Field(
        60.0,
        description="How long a client's keep-alive connection may sit idle before it is "
        "closed. Default 60s, below the 350s of common cloud load balancers' own "
        "keep-alive, and near nginx's 75s.",
    )
    upstream_idle: Duration = Field(
        4.0,
        description="How long a pooled connection to the app may sit idle before Pillion "
        "closes it. Default 4s: below the 5s keep-alive of Node.js, uvicorn and gunicorn, "
        "so Pillion never reuses a connection the app is closing (the cause of sporadic "
        "502s behind proxies with long upstream keep-alive).",
    )


class RateLimitConfig(_Section):
    """A token bucket per key: ``burst`` requests at once, then ``rate`` per second."""

    rate: float = Field(
        gt=0, description="Requests per second allowed per key, refilled continuously."
    )
    burst: int = Field(
        1,
        ge=1,
        description="Bucket size: requests a key may send at once after being quiet. "
        "Default 1: no burst beyond the rate.",
    )
    key: Literal["client", "header", "identity", "global"] = Field(
        "client",
        description="What gets its own bucket: the client address, the value of "
        "`header`, the caller's certificate identity (mTLS listeners; callers without "
        "one share a bucket), or one bucket for the whole listener. Default client.",
    )
    header: str | None = Field(
        None,
        pattern=_HEADER_NAME,
        description="The header whose value is the key, when `key` is `header` "
        "(e.g. `x-api-key`); requests without it share one bucket.",
    )

    @model_validator(mode="after")
    def _header_when_keyed_by_header(self) -> RateLimitConfig:
        if (self.key == "header") != (self.header is not None):
            raise ValueError("set `header` exactly when `key` is `header`")
        return self


class HeaderMatchConfig(_Section):
    """A condition on one request header."""

    name: str = Field(pattern=_HEADER_NAME, description="Header name.")
    exact: str | None = Field(None, description="The value must be exactly this.")
    regex: str | None = Field(None, description="The whole value must match this regex.")
    present: bool = Field(True, description="False: the header must be absent.")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _valid_regex(value)


class RouteMatchConfig(_Section):
    """What a request must look like; at most one of exact, prefix and regex."""

    exact: str | None = Field(None, pattern=r"^/", description="The path, exactly.")
    prefix: str | None = Field(None, pattern=r"^/", description="The path starts with this.")
    regex: str | None = Field(None, description="The whole path matches this regex.")
    methods: list[str] = Field(
        default_factory=list, description="Allowed methods (upper case). Default: any."
    )
    headers: list[HeaderMatchConfig] = Field(
        default_factory=list, description="Header conditions, all of which must hold."
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _valid_regex(value)

    @model_validator(mode="after")
    def _one_path_condition(self) -> RouteMatchConfig:
        if sum(c is not None for c in (self.exact, self.prefix, self.regex)) > 1:
            raise ValueError("match by one of exact, prefix or regex")
        return self

    def covers(self, later: RouteMatchConfig) -> bool:
        """Whether every request ``later`` matches, this matches too (conservative:
        header conditions and regex paths here are never said to cover)."""
        if self.headers or self.regex is not None:
            return False
        if self.methods and not (later.methods and set(later.methods) <= set(self.methods)):
            return False
        if self.exact is None and self.prefix is None:
            return True
        if self.exact is not None:
            return later.exact == self.exact
        assert self.prefix is not None
        if later.exact is not None:
            return later.exact.startswith(self.prefix)
        return later.prefix is not None and later.prefix.startswith(self.prefix)


class DirectResponseConfig(_Section):
    """Pillion answers itself; the request goes nowhere."""

    status: int = Field(ge=200, le=599, description="Status code.")
    body: str = Field("", description="Response body (text/plain).")


class RetryPolicyConfig(_Section):
    """When a failed request is sent again, to another endpoint when there is one.

    Connect failures are always retried (nothing was sent). Resets, per-try
    timeouts and the listed statuses are retried for idempotent methods only
    (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) unless `non_idempotent` is set, and
    only when the body was small enough to keep. Every retry also needs room in
    the cluster's retry budget.
    """

    max_retries: int = Field(2, ge=0, le=10, description="Retries after the first try. Default 2.")
    statuses: list[int] = Field(
        [502, 503, 504],
        description="Response codes that are retried (the response is discarded; the "
        "last try's response is passed on). Default 502, 503, 504.",
    )
    per_try_timeout: Duration | None = Field(
        None,
        description="Longest wait for a try's response headers; then the try is "
        "abandoned and retried. Default: none, only the route's timeout applies.",
    )
    non_idempotent: bool = Field(
        False,
        description="Also retry POST, PATCH and other non-idempotent methods after a "
        "reset, timeout or status (the app may have acted on them). Default false.",
    )
    max_body_size: Size = Field(
        64 * 1024,
        description="Largest request body kept for a retry; a larger one is streamed "
        "and never retried (except after a connect failure). Default 64KiB.",
    )
    backoff_base: Duration = Field(
        0.025,
        description="Backoff before retry n is random between 0 and base x 2^(n-1), "
        "capped at `backoff_max`. Default 25ms.",
    )
    backoff_max: Duration = Field(0.25, description="Longest backoff. Default 250ms.")

    @field_validator("statuses")
    @classmethod
    def _error_codes(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 400 <= status <= 599:
                raise ValueError(f"{status} is not an error status (400-599)")
        return value


class RetryBudgetConfig(_Section):
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


class AuthorizationConfig(_Section):
    """Which callers (by the identity in their client certificate) may pass; the
    rest get 403 with flag UAEX. A request matching either list passes."""

    identities: list[str] = Field(
        default_factory=list,
        description="Identities allowed exactly, e.g. "
        "`spiffe://cluster.local/ns/shop/sa/checkout`.",
    )
    identity_prefixes: list[str] = Field(
        default_factory=list,
        description="Identity prefixes allowed, e.g. `spiffe://cluster.local/ns/shop/` "
        "for a whole namespace.",
    )

    @model_validator(mode="after")
    def _allows_someone(self) -> AuthorizationConfig:
        if not (self.identities or self.identity_prefixes):
            raise ValueError("list identities or identity_prefixes; an empty list denies all")
        return self


class WeightedClusterConfig(_Section):
    """One cluster of a weighted split, with its share."""

    cluster: str = Field(description="The cluster's name.")
    weight: int = Field(ge=0, le=10_000, description="Relative share of the requests.")


class RouteConfig(_Section):
    """One route: a match and what to do with the requests it matches."""

    name: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="Name of the route in metrics (the `route` label). Default: its "
        "index in the list.",
    )
    match: RouteMatchConfig = Field(
        default_factory=RouteMatchConfig, description="Which requests; default all."
    )
    cluster: str | None = Field(
        None,
        description="Send to this cluster. Default: the listener's own upstream (inbound).",
    )
    weighted_clusters: list[WeightedClusterConfig] = Field(
        default_factory=list,
        description="Split requests across clusters by weight (canary releases), instead "
        "of `cluster`. Default: none.",
    )
    direct_response: DirectResponseConfig | None = Field(
        None, description="Answer directly instead of forwarding."
    )
    timeout: Duration | None = Field(
        None, description="Request timeout for this route. Default: the listener's or cluster's."
    )
    prefix_rewrite: str | None = Field(
        None,
        pattern=r"^/",
        description="Replace the matched `prefix` of the path with this (prefix routes only).",
    )
    retry: RetryPolicyConfig | None = Field(
        None, description="Retry policy. Default: the cluster's, else none."
    )
    rate_limit: RateLimitConfig | None = Field(
        None,
        description="Rate limit of this route (after the listener's); over it, 429 with "
        "`Retry-After` and flag RL. Default: none.",
    )
    jwt_required: bool | None = Field(
        None,
        description="Whether this route needs a token (the listener's `jwt` checks it). "
        "Default: the listener's `jwt.required`.",
    )
    api_key_required: bool | None = Field(
        None,
        description="Whether this route needs an API key (the listener's `api_keys`). "
        "Default: the listener's `api_keys.required`.",
    )
    authorization: AuthorizationConfig | None = Field(
        None,
        description="Callers allowed on this route (after the listener's own check); "
        "needs the listener's `tls.client_ca`. Default: whoever the listener lets in.",
    )
    set_request_headers: dict[str, str] = Field(
        default_factory=dict, description="Headers set (replaced) on the way to the upstream."
    )
    add_request_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers added on the way to the upstream, after any the request has.",
    )
    remove_request_headers: list[str] = Field(
        default_factory=list, description="Headers removed on the way to the upstream."
    )
    set_response_headers: dict[str, str] = Field(
        default_factory=dict, description="Headers set (replaced) on the way to the client."
    )
    add_response_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers added on the way to the client, after any the response has.",
    )
    remove_response_headers: list[str] = Field(
        default_factory=list, description="Headers removed on the way to the client."
    )

    @field_validator(
        "set_request_headers",
        "add_request_headers",
        "set_response_headers",
        "add_response_headers",
    )
    @classmethod
    def _header_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name, field_value in value.items():
            _header_name(name)
            if any(c in field_value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: value has a line break or NUL")
        return value

    @field_validator("remove_request_headers", "remove_response_headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        for name in value:
            _header_name(name)
        return value

    @model_validator(mode="after")
    def _coherent(self) -> RouteConfig:
        destinations = [
            self.direct_response is not None,
            self.cluster is not None,
            bool(self.weighted_clusters),
        ]
        if sum(destinations) > 1:
            raise ValueError("set one of direct_response, cluster and weighted_clusters")
        if self.weighted_clusters and not any(w.weight for w in self.weighted_clusters):
            raise ValueError("weighted_clusters need a weight above 0")
        if self.prefix_rewrite is not None and self.match.prefix is None:
            raise ValueError("prefix_rewrite needs a prefix match")
        return self


_PROTECTED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)


def _header_name(name: str) -> None:
    if not re.fullmatch(_HEADER_NAME, name):
        raise ValueError(f"{name!r} is not a header name")
    if name.lower() in _PROTECTED:
        raise ValueError(f"{name!r} is framing or routing; Pillion writes it itself")


def _valid_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
    return value


def _reachable(routes: list[RouteConfig]) -> list[RouteConfig]:
    """Refuse a route that an earlier one always takes first."""
    for later_index, later in enumerate(routes):
        for earlier_index, earlier in enumerate(routes[:later_index]):
            if earlier.match.covers(later.match):
                raise ValueError(
                    f"routes[{later_index}] can never match: routes[{earlier_index}] "
                    "takes every request it would"
                )
    return routes


Routes = Annotated[list[RouteConfig], AfterValidator(_reachable)]
"""A listener's routes, in order; one that can never match is refused."""


JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class JwtProviderConfig(_Section):
    """An issuer of JSON Web Tokens and where its public keys (JWKS) are."""

    issuer: str = Field(description="The `iss` a token must carry.")
    audiences: list[str] = Field(
        default_factory=list,
        description="The token's `aud` must name one of these. Default: not checked.",
    )
    jwks_file: str | None = Field(None, description="A JWKS file (reloaded when it changes).")
    jwks_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="A JWKS URL, fetched at start, every `jwks_refresh`, and when a token "
        "names an unknown `kid`; when it is down the last keys are kept.",
    )
    jwks_refresh: Duration = Field(300.0, description="How often the JWKS URL is fetched.")
    unknown_kid_refetch: Duration = Field(
        10.0,
        description="Shortest time between fetches caused by tokens with an unknown `kid` "
        "(a key rotation), so forged key ids cannot hammer the issuer. Default 10s.",
    )
    algorithms: list[JwtAlgorithm] = Field(
        ["RS256", "ES256"],
        min_length=1,
        description="Signature algorithms accepted (asymmetric only; `none` never).",
    )
    clock_skew: Duration = Field(
        60.0, description="Leeway for `exp`, `nbf` and `iat` against this clock. Default 60s."
    )
    required_claims: list[str] = Field(
        ["exp"], description="Claims a token must have. Default: `exp` (no eternal tokens)."
    )
    forward_claims: dict[str, str] = Field(
        default_factory=dict,
        description="Claims passed to the app as headers, e.g. `{sub: x-user}`; a copy "
        "the client sent is removed first.",
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> JwtProviderConfig:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of jwks_file and jwks_url")
        for header in self.forward_claims.values():
            _header_name(header)
        return self


class ApiKeysConfig(_Section):
    """API keys from a file: one per line, `sha256:<hex>` (hashed at rest) or plain,
    then optionally the caller's name. Without a valid key, 401."""

    file: str = Field(description="The key file; re-read when it changes.")
    header: str = Field(
        "x-api-key", pattern=_HEADER_NAME, description="The header carrying the key."
    )
    query_parameter: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._~-]+$",
        description="Also accept the key as this query parameter (it is removed before "
        "the request goes on). Default: header only.",
    )
    required: bool = Field(
        True, description="Whether requests need a key; routes may override (`api_key_required`)."
    )
    name_header: str = Field(
        "x-pillion-api-key-name",
        pattern=_HEADER_NAME,
        description="Header carrying the key's name (from the file) to the app; a client's "
        "copy is removed.",
    )


class JwtConfig(_Section):
    """JWT authentication: a bearer token (`Authorization: Bearer ...`) signed by one
    of the providers; without a valid one, 401 with `WWW-Authenticate`."""

    providers: list[JwtProviderConfig] = Field(
        min_length=1, description="Token issuers; a token is checked by its `iss`."
    )
    required: bool = Field(
        True,
        description="Whether a request without a token is refused; a token that is "
        "present is always checked. Routes may override with `jwt_required`.",
    )


class CertificateConfig(_Section):
    """A certificate chain and its key, as PEM files."""

    cert: str = Field(description="PEM file: the certificate, then any intermediates.")
    key: str = Field(description="PEM file: the private key (unencrypted).")
    server_names: list[str] = Field(
        default_factory=list,
        description="SNI names this certificate answers (`*.example.com` for one label). "
        "Default: the DNS names in the certificate.",
    )


class TlsConfig(_Section):
    """TLS termination: TLS 1.2 and 1.3, modern ciphers, ALPN http/1.1; files are
    watched and reloaded without a restart."""

    certificates: list[CertificateConfig] = Field(
        min_length=1,
        description="Certificates; chosen by SNI, the first is the default.",
    )
    client_ca: str | None = Field(
        None,
        description="PEM bundle of the CAs client certificates must chain to (mTLS). "
        "The caller's identity (SPIFFE ID, else DNS name, else common name) is passed "
        "to the app in `identity_header`. Default: no client certificates.",
    )
    client_certificate: Literal["required", "optional"] = Field(
        "required",
        description="With `client_ca`: whether a client without a certificate is refused "
        "at the handshake (required) or let in without an identity (optional).",
    )
    min_version: Literal["1.2", "1.3"] = Field(
        "1.2", description="Oldest TLS version accepted. Default 1.2 (1.0 and 1.1 never)."
    )
    handshake_timeout: Duration = Field(
        10.0, description="Longest time for a client to complete the handshake. Default 10s."
    )
    reload_interval: Duration = Field(
        1.0,
        description="How often the files are checked for changes (a new certificate "
        "serves new handshakes; open connections are untouched). Default 1s.",
    )


class InboundListenerConfig(_Section):
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
    limits: RequestLimits = Field(default_factory=RequestLimits, description="Request limits.")
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
        pattern=_HEADER_NAME,
        description="Header carrying the caller's certificate identity to the app. A "
        "copy sent by the client is always removed first, on every listener.",
    )
    jwt: JwtConfig | None = Field(
        None, description="JWT authentication of requests. Default: none."
    )
    api_keys: ApiKeysConfig | None = Field(
        None, description="API key authentication of requests. Default: none."
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
        if self.jwt is None and any(r.jwt_required for r in self.routes):
            raise ValueError("a route requires a JWT but the listener has no `jwt` providers")
        if self.api_keys is None and any(r.api_key_required for r in self.routes):
            raise ValueError("a route requires an API key but the listener has no `api_keys`")
        return self

    timeouts: Timeouts = Field(default_factory=Timeouts, description="Timeouts.")


class TcpListenerConfig(_Section):
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


class OutlierConfig(_Section):
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


class CircuitBreakerConfig(_Section):
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


class UpstreamTlsConfig(_Section):
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


class ClusterConfig(_Section):
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


# Ports whose protocols speak first from the server, or whose first bytes may look
# like HTTP (linkerd's default opaque ports): SMTP, MySQL, Galera, PostgreSQL, Redis,
# Elasticsearch transport, memcached.
DEFAULT_OPAQUE_PORTS = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211]


class OriginalDestinationConfig(_Section):
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


class OutboundListenerConfig(_Section):
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
    limits: RequestLimits = Field(default_factory=RequestLimits, description="Request limits.")
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


class AccessLogConfig(_Section):
    """The access log: one JSON line per request, written in batches."""

    path: str = Field(
        "-",
        description="File to append to, or `-` for standard output. Default `-`, as "
        "container logs are collected from stdout.",
    )
    fields: list[AccessLogField] = Field(
        list(ACCESS_LOG_FIELDS),
        description="Fields of each line, in order. Default: all of them.",
    )
    sample: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Fraction of requests logged (errors, code >= 500, are always logged). "
        "Default 1.0: every request.",
    )
    flush_interval: Duration = Field(
        0.1,
        description="Longest time a line waits before it is written. Default 100ms.",
    )

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("fields are listed more than once")
        return value


class ProxyConfig(_Section):
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
