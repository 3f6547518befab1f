"""Who may pass a listener or a route: JWT providers, API keys, and authorization
by the identity in a client certificate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pillion.config.proxy.tokens import HEADER_NAME, check_header_name
from pillion.config.types import HttpUrl, Section
from pillion.config.units import Duration

__all__ = [
    "ApiKeysConfig",
    "AuthorizationConfig",
    "JwtAlgorithm",
    "JwtConfig",
    "JwtProviderConfig",
]


class AuthorizationConfig(Section):
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


JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class JwtProviderConfig(Section):
    """An issuer of JSON Web Tokens and where its public keys (JWKS) are."""

    issuer: str = Field(description="The `iss` a token must carry.")
    audiences: list[str] = Field(
        default_factory=list,
        description="The token's `aud` must name one of these. Default: not checked.",
    )
    jwks_file: str | None = Field(None, description="A JWKS file (reloaded when it changes).")
    jwks_url: HttpUrl | None = Field(
        None,
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
            check_header_name(header)
        return self


class ApiKeysConfig(Section):
    """API keys from a file: one per line, `sha256:<hex>` (hashed at rest) or plain,
    then optionally the caller's name. Without a valid key, 401."""

    file: str = Field(description="The key file; re-read when it changes.")
    header: str = Field(
        "x-api-key", pattern=HEADER_NAME, description="The header carrying the key."
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
        pattern=HEADER_NAME,
        description="Header carrying the key's name (from the file) to the app; a client's "
        "copy is removed.",
    )


class JwtConfig(Section):
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
