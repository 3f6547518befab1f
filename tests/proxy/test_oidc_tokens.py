"""The ID token checks, the cookie and return-URL rules, and the login's decisions,
without sockets: a real provider only ever signs good tokens, so the bad ones are
made here with a real key (and the forgeries an attacker would try)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pillion.config.proxy import OidcConfig
from pillion.http.request import RequestHead
from pillion.proxy.gate import Pending, Refused
from pillion.proxy.oidclogin import OidcLogin
from pillion.proxy.oidcprovider import Metadata, OidcProvider, ProviderError
from pillion.proxy.oidcsession import Sealer, chunk_names, joined, safe_return, split
from pillion.telemetry import Metrics

ISSUER = "https://login.test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def provider() -> OidcProvider:
    config = OidcConfig.model_validate(
        {"issuer": ISSUER, "client_id": "shop", "allowed_email_domains": ["*"],
         "cookie": {"secret_files": ["/unused"]}}
    )  # fmt: skip
    made = OidcProvider(config, None)
    made.metadata = Metadata(ISSUER, f"{ISSUER}/auth", f"{ISSUER}/token", f"{ISSUER}/jwks",
                             None, False)  # fmt: skip
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    made.keys = {"k1": (jwt.PyJWK({**public, "kid": "k1", "alg": "RS256"}), "RS256")}
    return made


def token(key: Any = KEY, algorithm: str = "RS256", kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "shop", "sub": "alice", "iat": now, "exp": now + 300,
            "nonce": "n0nce", **claims}  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(**claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "shop", "sub": "root", "iat": now, "exp": now + 300,
            "nonce": "n0nce", **claims}  # fmt: skip
    header = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    return f"{header}.{_b64(json.dumps(body).encode())}."


def hs256_with_the_public_key() -> str:
    """Algorithm confusion: HMAC keyed with the published public key."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "shop", "sub": "root", "iat": now, "exp": now + 300,
            "nonce": "n0nce"}  # fmt: skip
    public = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    signing = f"{header}.{_b64(json.dumps(body).encode())}"
    signature = hmac.new(public, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(signature)}"


async def test_a_good_id_token_passes() -> None:
    claims = await provider().verify(token(email="alice@shop.test"), "n0nce")
    assert claims["sub"] == "alice"


@pytest.mark.parametrize(
    "bad",
    ["wrong aud", "wrong iss", "wrong nonce", "no nonce", "expired", "alg none",
     "hs256 with the public key", "another key", "several aud without azp", "no sub",
     "malformed"],
)  # fmt: skip
async def test_a_bad_id_token_is_refused(bad: str) -> None:
    past = int(time.time()) - 3600
    forgeries: dict[str, Callable[[], str]] = {
        "wrong aud": lambda: token(aud="other-client"),
        "wrong iss": lambda: token(iss="https://evil.test"),
        "wrong nonce": lambda: token(nonce="replayed"),
        "no nonce": lambda: token(nonce=None),
        "expired": lambda: token(exp=past, iat=past - 60),
        "alg none": unsigned,
        "hs256 with the public key": hs256_with_the_public_key,
        "another key": lambda: token(key=OTHER),
        "several aud without azp": lambda: token(aud=["shop", "other"]),
        "no sub": lambda: token(sub=None),
        "malformed": lambda: "not.a.token",
    }
    forged = forgeries[bad]()
    with pytest.raises(ProviderError) as refused:
        await provider().verify(forged, "n0nce")
    assert refused.value.reason == "invalid_id_token"


def test_sealed_cookies_open_only_with_a_listed_key_and_their_purpose() -> None:
    old, new, retired = b"o" * 32, b"n" * 32, b"r" * 32
    sealed = Sealer([old]).seal("session", {"u": "alice"})
    rotated = Sealer([new, old])
    assert rotated.open("session", sealed) == {"u": "alice"}  # sealed before the rotation
    assert rotated.open("login", sealed) is None  # a session is not a login cookie
    assert Sealer([new, retired]).open("session", sealed) is None  # its key was dropped
    assert rotated.open("session", sealed[:-1]) is None
    assert rotated.open("session", "") is None
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Sealer([b"short"])


def test_a_large_session_is_split_and_joined_and_stale_chunks_are_not_read() -> None:
    sealed = Sealer([b"k" * 32]).seal("session", {"t": "x" * 9000})
    pairs = split("s", sealed)
    assert [name for name, _ in pairs] == ["s", "s_1", "s_2", "s_3"]
    assert all(len(value) <= 3810 for _, value in pairs)
    cookies = dict(pairs)
    assert joined(cookies, "s") == sealed
    assert joined({**cookies, "s_4": "stale"}, "s") == sealed  # the first says how many
    assert joined({k: v for k, v in cookies.items() if k != "s_2"}, "s") is None
    assert chunk_names([*cookies, "s_x", "other", "s_4"], "s") == ["s", "s_1", "s_2", "s_3", "s_4"]


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/orders?page=2", True),
        ("/%2F%2Fevil.test", True),  # a path here: the browser does not decode it
        ("https://shop.test/x", True),
        ("https://docs.shop.test/", True),
        ("//evil.test", False),
        ("/\\evil.test", False),
        ("https:evil.test", False),
        ("https://evil.test/", False),
        ("https://shop.test@evil.test/", False),
        ("https://evil.test\\@shop.test/", False),
        ("HTTPS://evil.test/", False),
        ("javascript:alert(1)", False),
        ("evil.test", False),
        ("/ok\r\nSet-Cookie: x=y", False),
        ("/ok\t", False),
        ("", False),
    ],
)
def test_return_urls(target: str, kept: bool) -> None:
    assert (safe_return(target, "shop.test:8080", ["docs.shop.test"]) == target) is kept


def head(target: str, cookie: str = "") -> RequestHead:
    headers = [(b"Host", b"shop.test"), (b"Accept", b"text/html")]
    if cookie:
        headers.append((b"Cookie", cookie.encode()))
    return RequestHead(b"GET", target.encode(), b"1.1", headers, b"shop.test", True, "none",
                       0, set(), False, False)  # fmt: skip


async def test_who_knows_the_state_cannot_collect_a_login_in_flight(tmp_path: Path) -> None:
    """The callback's state is in URLs (histories, logs, Referer); the session it
    leads to goes only to the browser holding that login's cookie."""
    (tmp_path / "cookie").write_bytes(b"k" * 32)
    config = OidcConfig.model_validate(
        {"issuer": ISSUER, "client_id": "shop", "allowed_email_domains": ["*"],
         "cookie": {"secret_files": [str(tmp_path / "cookie")]}}
    )  # fmt: skip
    login = OidcLogin(config, "web", Metrics(process=False), tls=False)
    login.load()
    made = provider()
    login.provider = made
    release = asyncio.Event()

    async def redeem(code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        await release.wait()
        return {"id_token": "t", "access_token": "a"}

    async def verify(token: str, nonce: str | None) -> dict[str, Any]:
        return {"sub": "alice", "exp": time.time() + 300}

    made.redeem = redeem  # type: ignore[method-assign]
    made.verify = verify  # type: ignore[method-assign]

    started = login.check(head("/oauth2/start?rd=/in"))
    assert isinstance(started.decision, Refused)
    assert started.decision.status == 302
    headers = dict(started.decision.headers)
    state = parse_qs(urlsplit(headers[b"location"].decode()).query)["state"][0]
    victim = headers[b"set-cookie"].decode().split(";")[0]
    callback = f"/oauth2/callback?code=c0de&state={state}"

    waiting = login.check(head(callback, victim)).decision
    assert isinstance(waiting, Pending)
    for thief in ("", "_pillion_oidc_login_x=y", victim.split("=")[0] + "=v1.forged"):
        stolen = login.check(head(callback, thief)).decision
        assert isinstance(stolen, Refused)
        assert stolen.status == 403  # not the victim's wait, not its result
    release.set()
    await waiting.future
    for thief in ("", victim.split("=")[0] + "=v1.forged"):
        stolen = login.check(head(callback, thief)).decision
        assert isinstance(stolen, Refused)
        assert stolen.status == 403
    logged_in = login.check(head(callback, victim)).decision
    assert isinstance(logged_in, Refused)
    assert logged_in.status == 302
    assert dict(logged_in.headers)[b"location"] == b"/in"
    assert any(v.startswith(b"_pillion_oidc=") for n, v in logged_in.headers if n == b"set-cookie")
    await login.close()


@pytest.mark.parametrize(
    ("failure", "kept"), [("provider_unavailable", True), ("token_refused", False)]
)
async def test_a_refresh_that_fails_ends_the_session_only_if_the_provider_refused_it(
    tmp_path: Path, failure: str, kept: bool
) -> None:
    """A provider that is down leaves the session as it is until its tokens expire;
    one that refuses the refresh token (revoked, the user disabled) ends it."""
    (tmp_path / "cookie").write_bytes(b"k" * 32)
    config = OidcConfig.model_validate(
        {"issuer": ISSUER, "client_id": "shop", "allowed_email_domains": ["*"],
         "refresh_before": "10m", "cookie": {"secret_files": [str(tmp_path / "cookie")]}}
    )  # fmt: skip
    login = OidcLogin(config, "web", Metrics(process=False), tls=False)
    login.load()

    async def refresh(refresh_token: str) -> dict[str, Any]:
        raise ProviderError(failure, "no")

    login.provider.refresh = refresh  # type: ignore[method-assign]
    now = time.time()
    session: dict[str, Any] = {"u": "alice", "e": None, "g": [], "n": None, "t": now + 120,
                               "x": now + 3600, "r": "refresh-me", "i": None}  # fmt: skip
    (_, value), *_ = split("_pillion_oidc", Sealer([b"k" * 32]).seal("session", session))
    request = head("/page", f"_pillion_oidc={value}")
    waiting = login.check(request).decision
    assert isinstance(waiting, Pending)  # due: its tokens expire within refresh_before
    await waiting.future
    outcome = login.check(request)
    assert outcome.decision is None
    assert outcome.present is kept
    assert outcome.cookies == ()
    if kept:
        assert dict(outcome.headers)[b"x-forwarded-user"] == b"alice"
    else:
        assert outcome.reason == "expired"
    await login.close()


async def test_a_token_without_kid_from_a_rotated_key_reads_the_keys_again() -> None:
    """The provider's single key changed: the old one fails the signature, the keys
    are read again once, and the new one verifies it."""
    made = provider()
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(OTHER.public_key()))
    reads: list[str] = []

    async def load_keys(url: str) -> None:
        reads.append(url)
        made.keys = {"k2": (jwt.PyJWK({**public, "kid": "k2", "alg": "RS256"}), "RS256")}

    made._load_keys = load_keys  # type: ignore[method-assign]
    rotated = jwt.encode(
        {"iss": ISSUER, "aud": "shop", "sub": "alice", "iat": int(time.time()),
         "exp": int(time.time()) + 300, "nonce": "n0nce"},
        OTHER, algorithm="RS256",
    )  # fmt: skip
    assert (await made.verify(rotated, "n0nce"))["sub"] == "alice"
    assert reads == [f"{ISSUER}/jwks"]
    with pytest.raises(ProviderError):  # signed by neither: one more read, then refused
        await made.verify(token(key=rsa.generate_private_key(65537, 2048), kid=""), "n0nce")
    assert len(reads) == 2
