"""What a route does to the requests it takes: header and path edits, a direct
answer, its timeout, retry policy, rate limit, who may use it and which upgrades
it allows. Built once from the config; no I/O. (What a route *matches* is
``routing.py``.)"""

from __future__ import annotations

from typing import Final

from pillion.config.proxy import RouteConfig
from pillion.proxy.authz import Authorization
from pillion.proxy.ratelimit import RateLimit
from pillion.proxy.retries import RetryPolicy

__all__ = ["NO_EDITS", "NO_ROUTE", "OVERFLOW_EDITS", "Edits", "RouteSettings", "upgrades_of"]


def upgrades_of(protocols: list[str] | None) -> frozenset[bytes] | None:
    """Configured upgrade protocols as the gate compares them (None stays None)."""
    if protocols is None:
        return None
    return frozenset(protocol.lower().encode() for protocol in protocols)


def _pairs(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((name.lower().encode(), value.encode()) for name, value in headers.items())


def _names(headers: list[str]) -> frozenset[bytes]:
    return frozenset(name.lower().encode() for name in headers)


class Edits:
    """What a route changes on the way: the path prefix, request and response
    headers; or a direct answer."""

    __slots__ = (
        "add_headers",
        "add_response",
        "direct",
        "prefix",
        "remove",
        "remove_response",
        "replacement",
        "set_headers",
        "set_response",
    )

    def __init__(
        self,
        *,
        prefix: bytes | None = None,
        replacement: bytes | None = None,
        remove: frozenset[bytes] = frozenset(),
        set_headers: tuple[tuple[bytes, bytes], ...] = (),
        add_headers: tuple[tuple[bytes, bytes], ...] = (),
        remove_response: frozenset[bytes] = frozenset(),
        set_response: tuple[tuple[bytes, bytes], ...] = (),
        add_response: tuple[tuple[bytes, bytes], ...] = (),
        direct: tuple[int, bytes] | None = None,
    ) -> None:
        self.prefix = prefix
        self.replacement = replacement
        self.remove = remove
        self.set_headers = set_headers
        self.add_headers = add_headers
        self.remove_response = remove_response
        self.set_response = set_response
        self.add_response = add_response
        self.direct = direct

    def path(self, target: bytes) -> bytes | None:
        """The rewritten request target, or None when the route does not rewrite."""
        if self.prefix is None or self.replacement is None:
            return None
        return self.replacement + target[len(self.prefix) :]

    @classmethod
    def from_route(cls, config: RouteConfig) -> Edits:
        direct = config.direct_response
        prefix = config.match.prefix
        rewrite = config.prefix_rewrite is not None and prefix is not None
        return cls(
            prefix=prefix.encode() if rewrite and prefix else None,
            replacement=config.prefix_rewrite.encode()
            if rewrite and config.prefix_rewrite
            else None,
            remove=_names(config.remove_request_headers),
            set_headers=_pairs(config.set_request_headers),
            add_headers=_pairs(config.add_request_headers),
            remove_response=_names(config.remove_response_headers),
            set_response=_pairs(config.set_response_headers),
            add_response=_pairs(config.add_response_headers),
            direct=(direct.status, direct.body.encode()) if direct else None,
        )

    @property
    def edits_response(self) -> bool:
        return bool(self.remove_response or self.set_response or self.add_response)


NO_EDITS: Final = Edits()
OVERFLOW_EDITS: Final = Edits(direct=(503, b"upstream overflow: too many requests in flight\n"))


class RouteSettings:
    """What a route adds to the requests it sends: edits, a timeout, a retry policy,
    a rate limit, who may use it, the upgrades it allows (None: the listener's),
    and its name in metrics."""

    __slots__ = (
        "api_key_required",
        "authorization",
        "checks",
        "edits",
        "jwt_required",
        "limit",
        "name",
        "oidc_required",
        "retry",
        "timeout",
        "upgrades",
    )

    def __init__(
        self,
        name: str = "",
        edits: Edits = NO_EDITS,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        limit: RateLimit | None = None,
        authorization: Authorization | None = None,
        jwt_required: bool | None = None,
        api_key_required: bool | None = None,
        upgrades: frozenset[bytes] | None = None,
        oidc_required: bool | None = None,
    ) -> None:
        self.name = name
        self.jwt_required = jwt_required
        self.api_key_required = api_key_required
        self.oidc_required = oidc_required
        self.edits = edits
        self.timeout = timeout
        self.retry = retry
        self.limit = limit
        self.authorization = authorization
        self.upgrades = upgrades
        # whether the gate has anything to check here without listener-wide checks
        self.checks = authorization is not None or limit is not None

    @classmethod
    def from_route(cls, name: str, config: RouteConfig) -> RouteSettings:
        return cls(
            name,
            Edits.from_route(config),
            config.timeout,
            RetryPolicy(config.retry) if config.retry else None,
            RateLimit(config.rate_limit) if config.rate_limit else None,
            Authorization(config.authorization) if config.authorization else None,
            config.requires("jwt"),
            config.requires("api_key"),
            upgrades_of(config.upgrades),
            config.requires("oidc"),
        )


NO_ROUTE: Final = RouteSettings()
