"""An OpenID Connect provider, as the login calls it: discovery, its keys, the
token endpoint (an authorization code with its PKCE verifier, or a refresh token),
and the ID token's checks.

Discovery (``<issuer>/.well-known/openid-configuration``) and the JWKS are read at
start, every ``discovery_refresh``, and when a login finds them missing (at most
every few seconds); a failure keeps what was read before, so a provider that is
down at start makes logins fail with a clear page until it is back. The ID token
is checked with PyJWT: a signature by one of the provider's asymmetric keys (never
``none``, never a shared secret), ``iss`` the discovered issuer, ``aud`` naming the
client (and ``azp`` it when there are several), ``exp``/``iat`` with the clock
skew, and the ``nonce`` the login sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from pillion.config.proxy import OidcConfig
from pillion.config.redaction import redact_in
from pillion.proxy.jwtauth import public_keys

__all__ = ["Metadata", "OidcProvider", "ProviderError"]

log = logging.getLogger("pillion.proxy")

_MAX_DOCUMENT = 1024 * 1024
_RETRY_AFTER = 5.0  # seconds between discoveries a login may cause
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class ProviderError(Exception):
    """The provider could not be used, or what it sent does not pass; ``reason`` is
    the metric label, the message says why (no token or secret in it)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    client_secret_post: bool  # the provider takes the secret in the body, not Basic


class OidcProvider:
    def __init__(self, config: OidcConfig, client_secret: str | None) -> None:
        self.config = config
        self.client_secret = client_secret
        self.metadata: Metadata | None = None
        self.keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        self.last_discovery = float("-inf")
        self._discovering: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout), trust_env=False
            )
        return self._session

    async def _get(self, url: str) -> bytes:
        async with self._client().get(url, headers={"accept": "application/json"}) as response:
            if response.status != 200:
                raise ProviderError("provider_error", f"{url}: status {response.status}")
            return await response.content.read(_MAX_DOCUMENT)

    async def _get_json(self, url: str) -> dict[str, Any]:
        document = json.loads(await self._get(url))
        if not isinstance(document, dict):
            raise ProviderError("provider_error", f"{url}: not a JSON object")
        return document

    # -- discovery and keys --

    async def discover(self) -> None:
        """Read the discovery document and the keys; on failure, log and keep what
        was read before."""
        loop = asyncio.get_running_loop()
        self.last_discovery = loop.time()
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            document = await self._get_json(url)
            issuer = str(document.get("issuer", ""))
            if issuer.rstrip("/") != self.config.issuer.rstrip("/"):
                raise ProviderError("provider_error", f"the document names issuer {issuer!r}")
            methods = document.get("token_endpoint_auth_methods_supported") or []
            metadata = Metadata(
                issuer=issuer,
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
                end_session_endpoint=document.get("end_session_endpoint"),
                client_secret_post="client_secret_basic" not in methods
                and "client_secret_post" in methods,
            )
            await self._load_keys(metadata.jwks_uri)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as exc:
            self._failed(url, exc)
            return
        except ProviderError as exc:
            self._failed(url, exc)
            return
        if self.metadata is None:
            log.info("login provider discovered", extra={"issuer": issuer})
        self.metadata = metadata

    def _failed(self, url: str, exc: BaseException) -> None:
        log.error(
            "login provider discovery failed; logins wait for it",
            extra={
                "issuer": self.config.issuer,
                "url": url,
                "error": redact_in(str(exc) or type(exc).__name__, url),
                "discovered": self.metadata is not None,
            },
        )

    async def _load_keys(self, url: str) -> None:
        try:
            self.keys = public_keys(await self._get(url))
        except ValueError as exc:
            raise ProviderError("provider_error", f"{url}: {exc}") from None

    def discover_soon(self) -> asyncio.Task[None] | None:
        """A discovery to wait for (a login found none), unless one was made in the
        last few seconds."""
        if self._discovering is not None and not self._discovering.done():
            return self._discovering
        loop = asyncio.get_running_loop()
        if loop.time() - self.last_discovery < _RETRY_AFTER:
            return None
        self._discovering = loop.create_task(self.discover())
        return self._discovering

    # -- the token endpoint --

    async def redeem(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The tokens for an authorization code (its PKCE verifier proves the login
        that asked for it)."""
        return await self._token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
             "code_verifier": verifier}
        )  # fmt: skip

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, form: dict[str, str]) -> dict[str, Any]:
        metadata = self.metadata
        if metadata is None:
            raise ProviderError("provider_unavailable", "the provider is not discovered")
        form["client_id"] = self.config.client_id
        auth = None
        if self.client_secret is not None:
            if metadata.client_secret_post:
                form["client_secret"] = self.client_secret
            else:
                auth = aiohttp.BasicAuth(self.config.client_id, self.client_secret)
        try:
            async with self._client().post(
                metadata.token_endpoint,
                data=form,
                auth=auth,
                headers={"accept": "application/json"},
            ) as response:
                body = await response.content.read(_MAX_DOCUMENT)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ProviderError(
                "provider_unavailable", f"token endpoint: {type(exc).__name__}"
            ) from None
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ProviderError("provider_error", f"token endpoint: status {status}, not JSON")
        if status != 200:
            error = str(document.get("error", "error"))[:64]
            raise ProviderError("token_refused", f"token endpoint: status {status}, {error}")
        return document

    # -- the ID token --

    async def verify(self, token: str, nonce: str | None) -> dict[str, Any]:
        """The ID token's claims, once every check passes. The keys are read again,
        once, for a key id not known yet, or, for a token without one, when the
        provider's single key does not verify it (the provider rotated its key)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise ProviderError("invalid_id_token", "the ID token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in _ASYMMETRIC:
            raise ProviderError("invalid_id_token", f"ID token algorithm {algorithm!r} refused")
        kid = str(header.get("kid") or "")
        if kid and kid not in self.keys:
            await self._reload_keys()
        try:
            return self._decode(token, str(algorithm), kid, nonce)
        except jwt.InvalidSignatureError:
            if kid:
                raise ProviderError("invalid_id_token", "ID token: bad signature") from None
        await self._reload_keys()
        try:
            return self._decode(token, str(algorithm), kid, nonce)
        except jwt.InvalidSignatureError:
            raise ProviderError("invalid_id_token", "ID token: bad signature") from None

    async def _reload_keys(self) -> None:
        if self.metadata is not None:
            with contextlib.suppress(
                aiohttp.ClientError, TimeoutError, OSError, ValueError, ProviderError
            ):
                await self._load_keys(self.metadata.jwks_uri)

    def _decode(self, token: str, algorithm: str, kid: str, nonce: str | None) -> dict[str, Any]:
        """The checks with the keys known; a bad signature is raised as PyJWT's."""
        found = self.keys.get(kid)
        if found is None and not kid and len(self.keys) == 1:
            found = next(iter(self.keys.values()))  # no kid: the provider's one key
        if found is None:
            raise ProviderError("invalid_id_token", "the ID token's key is unknown")
        key, key_algorithm = found
        if key_algorithm is not None and key_algorithm != algorithm:
            raise ProviderError("invalid_id_token", "the ID token's algorithm is not its key's")
        metadata = self.metadata
        assert metadata is not None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.config.client_id,
                issuer=metadata.issuer,
                leeway=self.config.clock_skew,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidSignatureError:
            raise
        except jwt.PyJWTError as exc:
            raise ProviderError("invalid_id_token", f"ID token: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise ProviderError("invalid_id_token", "ID token: azp is not this client")
        if nonce is not None and claims.get("nonce") != nonce:
            raise ProviderError("invalid_id_token", "ID token: the nonce is not this login's")
        return claims

    async def close(self) -> None:
        if self._discovering is not None:
            self._discovering.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
