"""Routes of an HTTP listener: what a request must match, where it goes (a cluster,
a weighted split, a direct answer), and its retries, rate limit and header edits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    SerializationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from pillion.config.proxy.auth import AuthorizationConfig
from pillion.config.proxy.tokens import (
    HEADER_NAME,
    GrpcCode,
    UpgradeProtocol,
    check_header_name,
)
from pillion.config.redaction import REDACTED, revealed, sensitive_name
from pillion.config.types import HeaderMap, Regex, Section
from pillion.config.units import Duration, Size

__all__ = [
    "DirectResponseConfig",
    "HeaderMatchConfig",
    "RateLimitConfig",
    "RetryPolicyConfig",
    "RouteConfig",
    "RouteMatchConfig",
    "Routes",
    "WeightedClusterConfig",
]


class RateLimitConfig(Section):
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
        pattern=HEADER_NAME,
        description="The header whose value is the key, when `key` is `header` "
        "(e.g. `x-api-key`); requests without it share one bucket.",
    )

    @model_validator(mode="after")
    def _header_when_keyed_by_header(self) -> RateLimitConfig:
        if (self.key == "header") != (self.header is not None):
            raise ValueError("set `header` exactly when `key` is `header`")
        return self


class HeaderMatchConfig(Section):
    """A condition on one request header."""

    name: str = Field(pattern=HEADER_NAME, description="Header name.")
    exact: str | None = Field(None, description="The value must be exactly this.")
    regex: Regex | None = Field(None, description="The whole value must match this regex.")
    present: bool = Field(True, description="False: the header must be absent.")

    @field_serializer("exact", "regex")
    def _hide_credentials(self, value: str | None, info: SerializationInfo) -> str | None:
        """A condition on `Authorization` or `X-Api-Key` holds a credential: shown as ***."""
        if value is None or revealed(info.context) or not sensitive_name(self.name):
            return value
        return REDACTED


class RouteMatchConfig(Section):
    """What a request must look like; at most one of exact, prefix and regex."""

    exact: str | None = Field(None, pattern=r"^/", description="The path, exactly.")
    prefix: str | None = Field(None, pattern=r"^/", description="The path starts with this.")
    regex: Regex | None = Field(None, description="The whole path matches this regex.")
    methods: list[str] = Field(
        default_factory=list, description="Allowed methods (upper case). Default: any."
    )
    headers: list[HeaderMatchConfig] = Field(
        default_factory=list, description="Header conditions, all of which must hold."
    )

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


class DirectResponseConfig(Section):
    """Pillion answers itself; the request goes nowhere."""

    status: int = Field(ge=200, le=599, description="Status code.")
    body: str = Field("", description="Response body (text/plain).")


class RetryPolicyConfig(Section):
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
    grpc_codes: list[GrpcCode] = Field(
        [],
        description="gRPC statuses that are retried when the app answers a gRPC call "
        "with one of them and nothing else (a trailers-only response, as gRPC servers "
        "send errors), e.g. `unavailable`, `resource-exhausted` (names as Envoy's "
        "`retry_on`). A gRPC call is kept for this (up to `max_body_size`) whatever its "
        "method; resets and timeouts still retry it only with `non_idempotent`. "
        "Default: none.",
    )

    @field_validator("statuses")
    @classmethod
    def _error_codes(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 400 <= status <= 599:
                raise ValueError(f"{status} is not an error status (400-599)")
        return value


class WeightedClusterConfig(Section):
    """One cluster of a weighted split, with its share."""

    cluster: str = Field(description="The cluster's name.")
    weight: int = Field(ge=0, le=10_000, description="Relative share of the requests.")


class RouteConfig(Section):
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
        None,
        description="Request timeout for this route (0: none, for long-lived streams). "
        "Default: the listener's or cluster's.",
    )
    upgrades: list[UpgradeProtocol] | None = Field(
        None, description="The upgrades this route allows; default: the listener's `upgrades`."
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
    oidc_required: bool | None = Field(
        None,
        description="Whether this route needs a login (the listener's `oidc`). "
        "Default: the listener's `oidc.required`.",
    )
    auth: Literal["oidc", "jwt", "api_key", "none"] | None = Field(
        None,
        description="The one check this route needs, in one word: `oidc` (a login), "
        "`jwt`, `api_key`, or `none` (public, e.g. a health page); the others are not "
        "required. Shorthand for the `*_required` fields, which it may not be mixed with.",
    )
    authorization: AuthorizationConfig | None = Field(
        None,
        description="Callers allowed on this route (after the listener's own check); "
        "needs the listener's `tls.client_ca`. Default: whoever the listener lets in.",
    )
    set_request_headers: HeaderMap = Field(
        default_factory=dict, description="Headers set (replaced) on the way to the upstream."
    )
    add_request_headers: HeaderMap = Field(
        default_factory=dict,
        description="Headers added on the way to the upstream, after any the request has.",
    )
    remove_request_headers: list[str] = Field(
        default_factory=list, description="Headers removed on the way to the upstream."
    )
    set_response_headers: HeaderMap = Field(
        default_factory=dict, description="Headers set (replaced) on the way to the client."
    )
    add_response_headers: HeaderMap = Field(
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
            check_header_name(name)
            if any(c in field_value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: value has a line break or NUL")
        return value

    @field_validator("remove_request_headers", "remove_response_headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        for name in value:
            check_header_name(name)
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
        if self.auth is not None:
            mixed = [
                f"{check}_required"
                for check in ("oidc", "jwt", "api_key")
                if getattr(self, f"{check}_required") is not None
            ]
            if mixed:
                raise ValueError(f"auth is shorthand for {', '.join(mixed)}: set one or the other")
        return self

    def requires(self, check: Literal["oidc", "jwt", "api_key"]) -> bool | None:
        """Whether this route needs ``check`` (None: the listener's default)."""
        if self.auth is not None:
            return self.auth == check
        required: bool | None = getattr(self, f"{check}_required")
        return required


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
