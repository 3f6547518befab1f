"""Who may pass a listener or a route: JWT providers, API keys, an OpenID Connect
login for people, and authorization by the identity in a client certificate."""

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
    "OidcConfig",
    "OidcCookieConfig",
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


class OidcCookieConfig(Section):
    """The session cookie: the user's identity and tokens, encrypted and
    authenticated (AES-256-GCM), so any replica can read it and nothing is kept on
    the server."""

    name: str = Field(
        "_pillion_oidc",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The cookie's name; a large session is split into `<name>_1`, `<name>_2`, ...",
    )
    secret_files: list[str] = Field(
        min_length=1,
        description="Files holding the encryption secrets (at least 32 bytes each, e.g. "
        "`openssl rand -base64 32`). The first encrypts; all of them decrypt, so a key "
        "is rotated by putting the new one first and dropping the old one once every "
        "session made with it has expired.",
    )
    expire: Duration = Field(
        168 * 3600.0,
        description="Longest a session lasts, refreshes included; then the user logs in "
        "again. Default 168h (oauth2-proxy's `--cookie-expire`).",
    )
    domain: str | None = Field(
        None,
        pattern=r"^\.?[A-Za-z0-9.-]+$",
        description="The cookie's `Domain`. Default: none, the host that set it only.",
    )
    secure: bool | None = Field(
        None,
        description="The `Secure` attribute. Default: when the listener terminates "
        "TLS or `redirect_url` is https (behind a TLS-terminating ingress, set it).",
    )


class OidcConfig(Section):
    """A login for people: the OpenID Connect authorization code flow with PKCE. A
    browser without a session is sent to the provider; the session is a cookie; the
    app gets the user in `X-Forwarded-User`, `X-Forwarded-Email`,
    `X-Forwarded-Groups` and `X-Forwarded-Preferred-Username` (oauth2-proxy's names;
    a client's copies are always removed)."""

    issuer: HttpUrl = Field(
        description="The provider's issuer URL; its `/.well-known/openid-configuration` "
        "is read at start and every `discovery_refresh`."
    )
    client_id: str = Field(min_length=1, description="The client id registered there.")
    client_secret_file: str | None = Field(
        None,
        description="A file holding the client secret. Default: none, a public client "
        "(PKCE alone).",
    )
    scopes: list[str] = Field(
        ["openid", "email", "profile"],
        description="Scopes asked for; `openid` is always added. Default: openid, email, profile.",
    )
    redirect_url: HttpUrl | None = Field(
        None,
        description="The callback URL registered with the provider, e.g. "
        "`https://shop.example.com/oauth2/callback`. Default: the request's own scheme "
        "and host, and `<path_prefix>/callback`.",
    )
    path_prefix: str = Field(
        "/oauth2",
        pattern=r"^/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$",
        description="Where Pillion answers itself: `start`, `callback`, `sign_out`, "
        "`auth` (202 or 401, for nginx `auth_request`) and `userinfo` under it.",
    )
    required: bool = Field(
        True,
        description="Whether requests need a session; routes may override (`auth`).",
    )
    allowed_email_domains: list[str] = Field(
        default_factory=list,
        description="Users whose email is in one of these domains get in; `*` for any "
        "domain. A user passes if the email lists or the groups allow them.",
    )
    allowed_emails: list[str] = Field(
        default_factory=list, description="Users allowed by their exact email."
    )
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="Users in one of these groups (from `groups_claim`) get in.",
    )
    groups_claim: str = Field("groups", description="The ID token claim listing the groups.")
    email_claim: str = Field("email", description="The claim holding the email.")
    user_claim: str = Field(
        "sub", description="The claim sent as `X-Forwarded-User`. Default: `sub`."
    )
    allow_unverified_email: bool = Field(
        False,
        description="Accept an email whose `email_verified` claim is false. Default: "
        "no, such a user is refused.",
    )
    pass_access_token: bool = Field(
        False, description="Also send the access token, as `X-Forwarded-Access-Token`."
    )
    allowed_redirect_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts a post-login or post-logout return URL (`rd`) may name, "
        "besides the request's own. Default: none, same-host paths only.",
    )
    post_logout_redirect_url: HttpUrl | None = Field(
        None,
        description="Where the provider sends the user after sign-out (RP-initiated "
        "logout, where the provider supports it). Default: the sign-out's `rd`, else `/`.",
    )
    cookie: OidcCookieConfig = Field(description="The session cookie.")
    refresh_before: Duration = Field(
        60.0,
        description="Refresh the tokens with the refresh token this long before they "
        "expire. Without a refresh token the session ends with the ID token.",
    )
    discovery_refresh: Duration = Field(
        3600.0, description="How often the discovery document and keys are read again."
    )
    timeout: Duration = Field(10.0, description="Timeout of each call to the provider.")
    clock_skew: Duration = Field(60.0, description="Leeway for the ID token's `exp`/`iat`.")

    @model_validator(mode="after")
    def _someone_allowed(self) -> OidcConfig:
        if not (self.allowed_email_domains or self.allowed_emails or self.allowed_groups):
            raise ValueError(
                "say who may log in: allowed_email_domains (`*` for anyone the provider "
                "knows), allowed_emails or allowed_groups"
            )
        return self
