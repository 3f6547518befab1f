"""JWT authentication of requests: bearer tokens checked against issuers' keys.

A token is picked from ``Authorization: Bearer``, its provider found by its
``iss``, and its signature, algorithm (from the provider's allow-list; never
``none``, never a symmetric one), ``exp``/``nbf``/``iat`` (with the clock skew),
audience and required claims checked with PyJWT. A verified token is
remembered until it expires, so a client's repeated requests cost one dict
lookup, not a signature check.

Keys come from a JWKS file (re-read when it changes) or URL (fetched with
aiohttp at start, every ``jwks_refresh``, and when a token names an unknown
``kid``, at most once per ``unknown_kid_refetch``). A failed fetch keeps the
last good keys. A request whose ``kid`` is unknown waits for that one fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import jwt
from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import JwtConfig, JwtProviderConfig
from pillion.config.redaction import redact_in, redact_url
from pillion.http.headers import Headers
from pillion.telemetry import Metrics

__all__ = ["JwtAuthenticator", "JwtOutcome", "public_keys"]

log = logging.getLogger("pillion.proxy")

_FETCH_TIMEOUT = 5.0
_MAX_JWKS = 1024 * 1024
_CACHE = 10_000  # verified tokens remembered
_BEARER = b"bearer "


@dataclass(frozen=True)
class JwtOutcome:
    """What the check says: ``error`` (a 401) or the headers to forward; or, when a
    key must be fetched first, ``pending`` to wait for."""

    present: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()
    error: str = ""
    pending: asyncio.Future[None] | None = None


NO_TOKEN = JwtOutcome()


def public_keys(data: bytes) -> dict[str, tuple[jwt.PyJWK, str | None]]:
    """The usable public keys of a JWKS document, by ``kid``, with their ``alg``:
    symmetric keys and keys this build cannot use are left out. ``ValueError``
    when it is not a JWKS or holds no usable key."""
    try:
        document = json.loads(data)
        entries = document["keys"]
        if not isinstance(entries, list):
            raise TypeError("keys is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a JWKS document: {exc}") from None
    keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") == "oct":
            continue  # symmetric keys are never accepted
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue  # a key of a type or curve this build cannot use
        keys[str(entry.get("kid") or "")] = (key, entry.get("alg"))
    if not keys:
        raise ValueError("the JWKS has no usable public key")
    return keys


class JwtFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rejected = Counter(
            "pillion_jwt_rejected",
            "Requests refused (401) for their token, by listener and reason.",
            ["listener", "reason"],
            registry=registry,
        )
        self.jwks_fetches = Counter(
            "pillion_jwks_fetches",
            "JWKS loads by issuer and result (ok, error: the last keys are kept).",
            ["issuer", "result"],
            registry=registry,
        )


class Provider:
    """One issuer: its checks and its keys."""

    def __init__(self, config: JwtProviderConfig, families: JwtFamilies) -> None:
        self.config = config
        self.keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}  # kid -> key, its "alg"
        self.algorithms = frozenset(config.algorithms)
        self.forward = tuple(
            (claim, header.lower().encode()) for claim, header in config.forward_claims.items()
        )
        self._fetched_ok = families.jwks_fetches.labels(config.issuer, "ok")
        self._fetch_failed = families.jwks_fetches.labels(config.issuer, "error")
        self._stamp: tuple[int, int, int, int] | None = None
        self.last_fetch = float("-inf")
        self._fetching: asyncio.Future[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- keys --

    def _use(self, data: bytes) -> None:
        """Take a JWKS document; ``ValueError`` leaves the keys as they were."""
        self.keys = public_keys(data)

    async def load(self) -> None:
        """Load the keys once (at start); failures are logged, keys stay empty."""
        if self.config.jwks_file is not None:
            self.reload_file()
        else:
            await self.fetch()

    def reload_file(self) -> None:
        path = self.config.jwks_file
        assert path is not None
        try:
            st = os.stat(path)
            stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            with open(path, "rb") as file:
                self._use(file.read(_MAX_JWKS))
        except (OSError, ValueError) as exc:
            self._fetch_failed.inc()
            log.error(
                "JWKS file unusable; the last keys are kept",
                extra={"issuer": self.config.issuer, "path": path, "error": str(exc)},
            )
            return
        self._fetched_ok.inc()

    async def fetch(self) -> None:
        """Fetch the JWKS URL (one fetch at a time; callers share it)."""
        if self._fetching is not None:
            await asyncio.shield(self._fetching)
            return
        self._fetching = asyncio.get_running_loop().create_future()
        try:
            await self._fetch()
        finally:
            self._fetching.set_result(None)
            self._fetching = None

    async def _fetch(self) -> None:
        url = self.config.jwks_url
        assert url is not None
        self.last_fetch = asyncio.get_running_loop().time()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=_FETCH_TIMEOUT), trust_env=False
            )
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise ValueError(f"status {response.status}")
                self._use(await response.content.read(_MAX_JWKS))
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            self._fetch_failed.inc()
            log.error(
                "JWKS fetch failed; the last keys are kept",
                extra={
                    "issuer": self.config.issuer,
                    "url": redact_url(url),
                    "error": redact_in(str(exc) or type(exc).__name__, url),
                    "keys": len(self.keys),
                },
            )
            return
        self._fetched_ok.inc()

    def refetch_for_unknown_kid(self) -> asyncio.Future[None] | None:
        """A fetch to wait for, unless one was made too recently (or it is a file)."""
        if self.config.jwks_url is None:
            return None
        loop = asyncio.get_running_loop()
        if self._fetching is not None:
            return self._fetching
        if loop.time() - self.last_fetch < self.config.unknown_kid_refetch:
            return None
        return loop.create_task(self.fetch())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class JwtAuthenticator:
    """A listener's JWT check."""

    def __init__(self, config: JwtConfig, listener: str, metrics: Metrics) -> None:
        families = metrics.family("jwt", JwtFamilies)
        self.required = config.required
        self.providers = {p.issuer: Provider(p, families) for p in config.providers}
        # every header a provider forwards is removed from what the client sent
        self.forwarded_names = frozenset(
            name for provider in self.providers.values() for _, name in provider.forward
        )
        self._rejected: Callable[[str], Counter] = lambda reason: families.rejected.labels(
            listener, reason
        )
        self._verified: dict[bytes, tuple[float, tuple[tuple[bytes, bytes], ...]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for provider in self.providers.values():
            await provider.load()
        self._task = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        period = min(
            [1.0 if p.config.jwks_file else p.config.jwks_refresh for p in self.providers.values()]
        )
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            for provider in self.providers.values():
                if provider.config.jwks_file is not None:
                    provider.reload_file()
                elif loop.time() - provider.last_fetch >= provider.config.jwks_refresh:
                    await provider.fetch()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for provider in self.providers.values():
            await provider.close()

    def requires(self, route_says: bool | None) -> bool:
        """Whether a request on a route needs a token (the route's word, else ours)."""
        return self.required if route_says is None else route_says

    def rejected(self, reason: str) -> None:
        self._rejected(reason).inc()

    def check(self, headers: Headers, now: float, *, waited: bool = False) -> JwtOutcome:
        """Find and check the request's token (``now``: wall clock seconds)."""
        token = b""
        for name, value in headers:
            if name.lower() == b"authorization" and value[:7].lower() == _BEARER:
                token = value[7:].strip()
                break
        if not token:
            return NO_TOKEN
        known = self._verified.get(token)
        if known is not None:
            expires, forward = known
            if now < expires:
                return JwtOutcome(present=True, headers=forward)
            del self._verified[token]
        return self._verify(token, now, waited)

    def _verify(self, token: bytes, now: float, waited: bool) -> JwtOutcome:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return JwtOutcome(present=True, error="malformed token")
        provider = self.providers.get(str(unverified.get("iss")))
        if provider is None:
            return JwtOutcome(present=True, error="unknown issuer")
        algorithm = header.get("alg")
        if algorithm not in provider.algorithms:
            return JwtOutcome(present=True, error="algorithm not allowed")
        found = provider.keys.get(str(header.get("kid") or ""))
        if found is None:
            if not waited:
                pending = provider.refetch_for_unknown_kid()
                if pending is not None:
                    return JwtOutcome(present=True, pending=pending)
            return JwtOutcome(present=True, error="unknown key id")
        key, key_algorithm = found
        if key_algorithm is not None and key_algorithm != algorithm:
            return JwtOutcome(present=True, error="algorithm does not match the key")
        config = provider.config
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=config.audiences or None,
                issuer=config.issuer,
                leeway=config.clock_skew,
                options={"require": config.required_claims, "verify_aud": bool(config.audiences)},
            )
        except jwt.ExpiredSignatureError:
            return JwtOutcome(present=True, error="token expired")
        except jwt.ImmatureSignatureError:
            return JwtOutcome(present=True, error="token not yet valid")
        except jwt.InvalidAudienceError:
            return JwtOutcome(present=True, error="wrong audience")
        except jwt.InvalidIssuerError:
            return JwtOutcome(present=True, error="wrong issuer")
        except jwt.MissingRequiredClaimError:
            return JwtOutcome(present=True, error="missing a required claim")
        except jwt.InvalidSignatureError:
            return JwtOutcome(present=True, error="bad signature")
        except (jwt.PyJWTError, TypeError, ValueError, AttributeError):
            return JwtOutcome(present=True, error="invalid token")  # also: key of another type
        forward = tuple(
            (name, _header_value(claims[claim])) for claim, name in provider.forward
            if claim in claims
        )  # fmt: skip
        if len(self._verified) >= _CACHE:
            self._verified.clear()
        expires = float(claims.get("exp", now + 60)) + config.clock_skew
        self._verified[token] = (min(expires, now + 300), forward)
        return JwtOutcome(present=True, headers=forward)


def _header_value(value: object) -> bytes:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
