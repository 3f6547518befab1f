"""The admission gate: whether a request goes on, where, and with what. No I/O.

Every request of every protocol (an HTTP/1.1 request, an HTTP/2 stream) passes
``Gate.decide`` once before anything of it is forwarded. The checks run in a
fixed order, and the first that refuses answers:

1. the listener's identity allow-list (mTLS): 403, flag ``UAEX``;
2. the OIDC login (``oidclogin``): its own paths (callback, sign-out, ...) are
   answered here; the session cookie, if any, is read (a refresh to wait for
   makes the decision ``Pending``); whether one was needed is decided in step 7;
3. JWT: a bad token 401 ``UAEX`` with a ``Bearer`` challenge; a token whose key id
   is new makes the decision ``Pending`` on the key fetch (decide again once it is
   done, with ``waited=True``, so a key id is fetched for at most once);
4. API key: an unknown key 401 ``UAEX`` (the key is taken out of the request);
5. the listener's rate limit: 429 ``RL`` with ``Retry-After``;
6. the route: none matches, 404 ``NR``;
7. the route's own checks: a login required (a browser is sent to the provider,
   anything else gets 401), a token required (401), an API key required (401),
   its identity allow-list (403), its rate limit (429);
8. the upgrade: an ``Upgrade`` is forwarded only for the protocols the route
   allows (``upgrades``, by default the listener's: ``websocket``); any other
   protocol is dropped from the request, which is then served as plain HTTP.
   ``h2c`` is never allowed: an HTTP/2 request smuggled in an h2c tunnel would
   pass no check (RFC 9113 §3.1 removed the upgrade; Envoy strips it too).

Steps 1 to 3 change nothing a second decision would see differently (the login
finds its own waits again by the request's state or cookie), so deciding again
after ``Pending`` is safe; the
rate limits take their token only once the checks before them passed.
The gate counts what it refuses (JWT and API-key metrics); it never reads or
writes a socket, and a decision depends only on its inputs, its checks' state
(keys loaded, buckets) and the clocks handed in, so it is tested without sockets.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from pillion.http.request import RequestHead
from pillion.proxy import flags

if TYPE_CHECKING:
    from pillion.proxy.apikeys import ApiKeys
    from pillion.proxy.authz import Authorization
    from pillion.proxy.cluster import Target
    from pillion.proxy.jwtauth import JwtAuthenticator
    from pillion.proxy.oidclogin import OidcLogin
    from pillion.proxy.ratelimit import RateLimit

__all__ = ["Admitted", "Decision", "Gate", "Peer", "Pending", "Refused", "Router"]

AuthHeaders = tuple[tuple[bytes, bytes], ...]


class Peer(Protocol):
    """Who sent the request: what the gate and the router may look at."""

    @property
    def client_ip(self) -> bytes: ...

    @property
    def identity(self) -> bytes | None:
        """The identity in the client certificate (TLS listeners), else None."""

    @property
    def original(self) -> tuple[str, int] | None:
        """Where a captured connection was sent by the app, else None."""


Router = Callable[[RequestHead, Peer], "Target | None"]
"""A listener's choice of upstream for a request (None: no route)."""


class Admitted:
    """The request goes on: to ``target``, with ``headers`` added for the app
    (verified claims, the API key's caller, the logged-in user), with ``upgrade`` as
    its ``Upgrade`` value (None: not an upgrade, or not one this route allows), and
    ``reply_headers`` added to the response (a refreshed session's cookies)."""

    __slots__ = ("headers", "reply_headers", "target", "upgrade", "user")

    def __init__(
        self,
        target: Target,
        headers: AuthHeaders,
        upgrade: bytes | None,
        reply_headers: AuthHeaders = (),
        user: bytes | None = None,
    ) -> None:
        self.target = target
        self.headers = headers
        self.upgrade = upgrade
        self.reply_headers = reply_headers
        self.user = user  # the logged-in user, for the access log

    def __repr__(self) -> str:
        return f"<Admitted {self.target.labels} upgrade={self.upgrade!r}>"


class Refused:
    """Pillion answers itself: ``status`` with ``message`` as the body, with
    ``headers``, and ``flag`` in metrics and the access log. ``target`` is the
    route's upstream when the refusal came after the route was chosen (its
    counts must be closed like any exchange's), else None."""

    __slots__ = ("flag", "headers", "message", "status", "target")

    def __init__(
        self,
        status: int,
        flag: str,
        message: str,
        headers: AuthHeaders = (),
        target: Target | None = None,
    ) -> None:
        self.status = status
        self.flag = flag
        self.message = message
        self.headers = headers
        self.target = target

    def __repr__(self) -> str:
        return f"<Refused {self.status} {self.flag} {self.message!r}>"


class Pending:
    """Not decided yet: decide again (``waited=True``) when ``future`` is done."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


Decision = Admitted | Refused | Pending

_NO_HEADERS: Final[AuthHeaders] = ()
_FORBIDDEN: Final = "caller not allowed"


class Gate:
    """A listener's admission checks, and its router."""

    __slots__ = (
        "_any_check",
        "_monotonic",
        "_wall",
        "api_keys",
        "authorization",
        "jwt",
        "oidc",
        "rate_limit",
        "router",
        "strip",
        "upgrades",
    )

    def __init__(
        self,
        router: Router,
        *,
        authorization: Authorization | None = None,
        jwt: JwtAuthenticator | None = None,
        api_keys: ApiKeys | None = None,
        rate_limit: RateLimit | None = None,
        upgrades: frozenset[bytes] = frozenset({b"websocket"}),
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        oidc: OidcLogin | None = None,
    ) -> None:
        self.router = router
        self.authorization = authorization
        self.jwt = jwt
        self.api_keys = api_keys
        self.rate_limit = rate_limit
        self.oidc = oidc
        self.upgrades = upgrades - {b"h2c"}
        self._monotonic = monotonic  # rate limits
        self._wall = wall  # token expiry
        self._any_check = any(
            c is not None for c in (authorization, jwt, api_keys, rate_limit, oidc)
        )
        strip: frozenset[bytes] = frozenset()
        if oidc is not None:  # the user's identity replaces what the client sent
            from pillion.proxy.oidclogin import FORWARDED

            strip |= FORWARDED
        if jwt is not None:  # claims replace what the client sent in their headers
            strip |= jwt.forwarded_names
        if api_keys is not None:  # the key itself never travels on
            strip |= {api_keys.header, api_keys.name_header}
        self.strip = strip
        """Header names the client may not send on: the gate's own headers."""

    @property
    def authenticates(self) -> bool:
        """Whether admission can add headers or take some out (JWT, API keys)."""
        return self.jwt is not None or self.api_keys is not None or self.oidc is not None

    def decide(self, head: RequestHead, peer: Peer, *, waited: bool = False) -> Decision:
        """The decision for this request (see the module docstring for the order)."""
        headers = reply = _NO_HEADERS
        user: bytes | None = None
        token_present = key_present = False
        login = ""  # why there is no usable login session ("": there is one)
        if self._any_check:
            authorization = self.authorization
            if authorization is not None and not authorization.allows(peer.identity):
                return Refused(403, flags.UAEX, _FORBIDDEN)
            oidc = self.oidc
            if oidc is not None:
                session = oidc.check(head)
                if session.decision is not None:  # its own paths, or a wait
                    return session.decision
                if session.present:
                    headers, reply, user = session.headers, session.cookies, session.user
                else:
                    login = session.reason
            jwt = self.jwt
            if jwt is not None:
                outcome = jwt.check(head.headers, self._wall(), waited=waited)
                if outcome.pending is not None:  # its key id is new: wait for the key fetch
                    return Pending(outcome.pending)
                if outcome.error:
                    return self._unauthenticated(outcome.error)
                token_present = outcome.present
                headers = outcome.headers
            api_keys = self.api_keys
            if api_keys is not None:
                key_present, caller = api_keys.check(head)
                if key_present and caller is None:
                    api_keys.invalid.inc()
                    return Refused(401, flags.UAEX, "a valid API key is required")
                if caller:
                    headers += ((api_keys.name_header, caller.encode()),)
            if self.rate_limit is not None:
                refused = self._limited(self.rate_limit, head, peer, headers)
                if refused is not None:
                    return refused
        target = self.router(head, peer)
        if target is None:
            return Refused(404, flags.NR, "no route for this request")
        route = target.route
        if self._any_check or route.checks:
            oidc = self.oidc
            if login and oidc is not None and oidc.requires(route.oidc_required):
                needed = oidc.refused(head, login)
                if isinstance(needed, Refused):
                    needed.target = target
                return needed
            refused = self._route_checks(target, head, peer, token_present, key_present, headers)
            if refused is not None:
                return refused
        upgrade = self._upgrade(head, route.upgrades) if head.upgrade else None
        return Admitted(target, headers, upgrade, reply, user)

    def _route_checks(
        self,
        target: Target,
        head: RequestHead,
        peer: Peer,
        token_present: bool,
        key_present: bool,
        added: AuthHeaders,
    ) -> Refused | None:
        route = target.route
        jwt = self.jwt
        if jwt is not None and not token_present and jwt.requires(route.jwt_required):
            refused = self._unauthenticated("")
            refused.target = target
            return refused
        api_keys = self.api_keys
        if api_keys is not None and not key_present and api_keys.requires(route.api_key_required):
            api_keys.missing.inc()
            return Refused(401, flags.UAEX, "a valid API key is required", target=target)
        if route.authorization is not None and not route.authorization.allows(peer.identity):
            return Refused(403, flags.UAEX, _FORBIDDEN, target=target)
        if route.limit is not None:
            limited = self._limited(route.limit, head, peer, added)
            if limited is not None:
                limited.target = target
                return limited
        return None

    def _limited(
        self, limit: RateLimit, head: RequestHead, peer: Peer, added: AuthHeaders
    ) -> Refused | None:
        """Take a token; without one, 429 with the seconds until the next. A limit
        keyed by a header the gate itself writes (a JWT claim, the API key's name)
        reads the verified value in ``added``, never the client's copy, so a caller
        cannot pick a fresh bucket by sending the header."""
        headers = list(added) if limit.header in self.strip else head.headers
        wait = limit.wait(peer.client_ip, headers, self._monotonic(), peer.identity)
        if not wait:
            return None
        return Refused(429, flags.RL, "rate limited", ((b"retry-after", b"%d" % math.ceil(wait)),))

    def _unauthenticated(self, error: str) -> Refused:
        """No token where one is needed (``error`` empty), or a bad one: 401."""
        jwt = self.jwt
        assert jwt is not None
        jwt.rejected(error.replace(" ", "_") if error else "missing")
        challenge = b'Bearer realm="pillion"'
        if error:
            challenge += b', error="invalid_token", error_description="%s"' % error.encode()
        return Refused(
            401,
            flags.UAEX,
            error or "a bearer token is required",
            ((b"www-authenticate", challenge),),
        )

    def _upgrade(self, head: RequestHead, route_allows: frozenset[bytes] | None) -> bytes | None:
        """The ``Upgrade`` value to forward: the protocols offered that are allowed
        here (``name`` or ``name/version``, compared by name, case-insensitively)."""
        allowed = self.upgrades if route_allows is None else route_allows - {b"h2c"}
        if not allowed:
            return None
        offered = b""
        for name, value in head.headers:
            if name.lower() == b"upgrade":
                offered = offered + b"," + value if offered else value
        kept = [
            protocol
            for item in offered.split(b",")
            if (protocol := item.strip()) and protocol.split(b"/", 1)[0].strip().lower() in allowed
        ]
        return b", ".join(kept) if kept else None
