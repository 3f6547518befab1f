"""JWT authentication end to end: tokens signed with real keys, a JWKS served over
HTTP by a server the test can take down, and a JWKS file that is replaced."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    metric_value,
    running_pillion,
    serve_http,
    wait_until,
)
from tests.proxy.harness import Client, Response, ScriptedUpstream, get, scripted_upstream

ISSUER, FILE_ISSUER = "https://issuer.test", "https://file.test"


@dataclass
class Signer:
    """A key pair and its public JWK."""

    kid: str
    algorithm: str
    private: Any = None

    def __post_init__(self) -> None:
        if self.algorithm.startswith("RS"):
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def token(self, issuer: str = ISSUER, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": issuer, "aud": "orders", "sub": "alice", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


@dataclass
class JwksServer:
    """Serves ``keys`` as a JWKS document; ``down`` makes it answer 503."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False
    fetches: int = 0
    port: int = 0
    serving: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> JwksServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if outer.down:
                    self.send_error(503)
                    return
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = self.serving.enter_context(serve_http(Handler))
        return self

    def __exit__(self, *_: object) -> None:
        self.serving.close()


@dataclass
class Guarded:
    pillion: PillionProcess
    port: int
    app: ScriptedUpstream
    jwks: JwksServer
    jwks_file: Path
    rsa: Signer
    ec: Signer
    file_signer: Signer

    def call(self, path: str = "/orders", token: str | None = None, extra: str = "") -> Response:
        auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
        client = Client(self.port)
        try:
            return client.request(get(path, auth + extra))
        finally:
            client.close()

    def metrics(self) -> bytes:
        return http("GET", f"{self.pillion.status_url}/metrics")[2]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    directory = tmp_path_factory.mktemp("jwt")
    rs, es, on_file = Signer("k1", "RS256"), Signer("k2", "ES256"), Signer("f1", "ES256")
    jwks_file = directory / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [on_file.jwk()]}))
    port = free_port()
    with JwksServer(keys=[rs.jwk(), es.jwk()]) as jwks, scripted_upstream() as app:
        proxy = f"""
proxy:
  access_log: null
  inbound:
    - name: api
      listen: 127.0.0.1:{port}
      jwt:
        providers:
          - issuer: {ISSUER}
            audiences: [orders]
            jwks_url: http://127.0.0.1:{jwks.port}/jwks.json
            jwks_refresh: 1h
            unknown_kid_refetch: 100ms
            forward_claims: {{sub: x-user, scope: x-scope}}
          - issuer: {FILE_ISSUER}
            jwks_file: {jwks_file}
            algorithms: [ES256]
      routes:
        - {{match: {{prefix: /public/}}, jwt_required: false}}
        - {{match: {{prefix: /}}}}
"""
        with running_pillion(directory, proxy, app.port) as pillion:
            yield Guarded(pillion, port, app, jwks, jwks_file, rs, es, on_file)


def _seen_headers(guarded: Guarded) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in guarded.app.requests[-1].headers:
        seen.setdefault(name.decode().lower(), []).append(value.decode())
    return seen


def test_a_valid_token_passes_with_its_claims_as_headers(guarded: Guarded) -> None:
    for signer in (guarded.rsa, guarded.ec):
        token = signer.token(scope=["read", "write"])
        response = guarded.call(token=token, extra="X-User: mallory\r\n")
        assert response.status == 200, response.body
        seen = _seen_headers(guarded)
        assert seen["x-user"] == ["alice"]  # the claim, not the client's copy
        assert seen["x-scope"] == ['["read","write"]']
        assert seen["authorization"] == [f"Bearer {token}"]


def test_a_missing_token_is_401_unless_the_route_does_not_require_one(guarded: Guarded) -> None:
    before = len(guarded.app.requests)
    missing = guarded.call()
    assert (missing.status, missing.header(b"www-authenticate")) == (401, b'Bearer realm="pillion"')
    assert guarded.call("/public/x").status == 200
    # a token that is there is checked, even where none is required
    bad = guarded.call("/public/x", token="not.a.token")
    assert bad.status == 401
    assert len(guarded.app.requests) == before + 1


def _forged_with_none(signer: Signer) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "orders", "sub": "root", "exp": now + 300}
    return jwt.encode(claims, "", algorithm="none", headers={"kid": signer.kid})


def _hs256_with_the_public_key(signer: Signer) -> str:
    """Algorithm confusion: HMAC keyed with the published public key."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "orders", "sub": "root", "exp": now + 300}
    public = signer.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": signer.kid}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def test_bad_tokens_are_refused_and_never_reach_the_app(guarded: Guarded) -> None:
    rs = guarded.rsa
    impostor = Signer("k1", "RS256")  # the right kid, another key
    now = int(time.time())
    cases = {
        "bad signature": impostor.token(),
        "algorithm not allowed": _forged_with_none(rs),
        "token expired": rs.token(exp=now - 3600, iat=now - 7200),
        "wrong audience": rs.token(aud="payments"),
        "unknown issuer": rs.token(issuer="https://elsewhere.test"),
        "missing a required claim": rs.token(exp=None),
        "malformed token": "Zm9v.YmFy",
    }
    before = len(guarded.app.requests)
    for reason, token in cases.items():
        response = guarded.call(token=token)
        assert response.status == 401, reason
        challenge = response.header(b"www-authenticate") or b""
        assert f'error_description="{reason}"'.encode() in challenge, (reason, challenge)
    confused = guarded.call(token=_hs256_with_the_public_key(rs))
    assert confused.status == 401
    assert len(guarded.app.requests) == before
    metrics = guarded.metrics()
    series = 'pillion_jwt_rejected_total{listener="api",reason="token_expired"}'
    assert metric_value(metrics, series) == 1.0
    # tokens are credentials: none of them is ever logged
    output = guarded.pillion.output()
    assert all(token not in output for token in cases.values())


def test_a_rotated_key_is_fetched_on_first_sight(guarded: Guarded) -> None:
    rotated = Signer("k3", "ES256")
    guarded.jwks.keys.append(rotated.jwk())
    fetches = guarded.jwks.fetches
    time.sleep(0.2)  # past unknown_kid_refetch since the last fetch
    assert guarded.call(token=rotated.token()).status == 200
    assert guarded.jwks.fetches == fetches + 1


def test_with_the_jwks_url_down_known_keys_still_work(guarded: Guarded) -> None:
    guarded.jwks.down = True
    try:
        time.sleep(0.2)  # past unknown_kid_refetch since the last fetch
        unknown = Signer("k9", "ES256")
        response = guarded.call(token=unknown.token())
        assert response.status == 401
        assert b'error_description="unknown key id"' in (
            response.header(b"www-authenticate") or b""
        )
        # the fetch failed; the last good keys are kept
        assert guarded.call(token=guarded.rsa.token()).status == 200
        guarded.pillion.wait_for_log("JWKS fetch failed; the last keys are kept")
        series = f'pillion_jwks_fetches_total{{issuer="{ISSUER}",result="error"}}'
        assert (metric_value(guarded.metrics(), series) or 0) >= 1
    finally:
        guarded.jwks.down = False


def test_a_jwks_file_is_reloaded_when_replaced(guarded: Guarded) -> None:
    signer = guarded.file_signer
    assert guarded.call(token=signer.token(issuer=FILE_ISSUER)).status == 200
    replacement = Signer("f2", "ES256")
    temp = guarded.jwks_file.with_suffix(".new")
    temp.write_text(json.dumps({"keys": [replacement.jwk()]}))
    temp.replace(guarded.jwks_file)
    wait_until(lambda: guarded.call(token=replacement.token(issuer=FILE_ISSUER)).status == 200)
    # the old key left the file: its new tokens fail
    assert guarded.call(token=signer.token(issuer=FILE_ISSUER, sub="bob")).status == 401
    # RS256 is not in this provider's algorithms
    rsa_key = Signer("f2", "RS256")
    assert guarded.call(token=rsa_key.token(issuer=FILE_ISSUER)).status == 401


def test_each_http2_stream_is_checked_on_its_own(guarded: Guarded) -> None:
    """One HTTP/2 connection, three streams: a valid token, none, a forged one."""
    from tests.proxy.h2raw import RawH2

    before = len(guarded.app.requests)
    client = RawH2(guarded.port)
    token = guarded.ec.token()
    client.request(1, "/orders", extra=[(b"authorization", f"Bearer {token}".encode()),
                                        (b"x-user", b"mallory")])  # fmt: skip
    client.request(3, "/orders")
    client.request(5, "/orders", extra=[(b"authorization", b"Bearer " +
                                         _forged_with_none(guarded.ec).encode())])  # fmt: skip
    client.read_until(lambda: all(client.stream(i).over for i in (1, 3, 5)))
    assert [client.stream(i).status for i in (1, 3, 5)] == [200, 401, 401]
    assert client.stream(3).header(b"www-authenticate") == b'Bearer realm="pillion"'
    assert len(guarded.app.requests) == before + 1
    assert _seen_headers(guarded)["x-user"] == ["alice"]
    # a gRPC call without a token is answered the gRPC way
    grpc_fields = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
    client.request(7, "/pkg.Service/Call", method="POST", body=bytes(5), extra=grpc_fields)
    grpc = client.response(7)
    assert grpc.status == 200
    assert grpc.header(b"grpc-status") == b"16"  # UNAUTHENTICATED
    assert grpc.header(b"content-type") == b"application/grpc"
    client.close()
