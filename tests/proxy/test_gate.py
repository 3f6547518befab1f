"""The admission gate, without sockets: every decision, and the order of the checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pillion.config.proxy import (
    ApiKeysConfig,
    AuthorizationConfig,
    JwtConfig,
    JwtProviderConfig,
    RateLimitConfig,
)
from pillion.http.request import RequestHead
from pillion.proxy import flags
from pillion.proxy.apikeys import ApiKeys
from pillion.proxy.authz import Authorization
from pillion.proxy.cluster import Target
from pillion.proxy.edits import RouteSettings
from pillion.proxy.gate import Admitted, Gate, Refused
from pillion.proxy.jwtauth import JwtAuthenticator
from pillion.proxy.ratelimit import RateLimit
from pillion.telemetry import Metrics
from tests.proxy.harness import parse_head
from tests.proxy.test_jwt import ISSUER, Signer

KEY = "gate-test-key-0123456789"
ADMIN = "spiffe://cluster.local/ns/ops/sa/admin"


def request(path: str = "/open", headers: str = "", body: str = "") -> RequestHead:
    return parse_head(f"GET {path} HTTP/1.1\r\nHost: app\r\n{headers}\r\n{body}".encode())


@dataclass
class Peer:
    client_ip: bytes = b"10.0.0.7"
    identity: bytes | None = None
    original: tuple[str, int] | None = None


def _targets() -> dict[str, Target]:
    def target(name: str, **settings: object) -> Target:
        return Target(None, 1.0, b"app", route=RouteSettings(name, **settings))  # type: ignore[arg-type]

    return {
        "/open": target("open"),
        "/keyed": target("keyed", api_key_required=True),
        "/free": target("free", api_key_required=False, jwt_required=False),
        "/admin": target(
            "admin", authorization=Authorization(AuthorizationConfig(identities=[ADMIN]))
        ),
        "/limited": target("limited", limit=RateLimit(RateLimitConfig(rate=1, burst=1))),
        "/foo": target("foo", upgrades=frozenset({b"foo"})),
        "/none": target("none", upgrades=frozenset()),
    }


def route(head: RequestHead, peer: object) -> Target | None:
    for prefix, found in TARGETS.items():
        if head.target.startswith(prefix.encode()):
            return found
    return None


TARGETS = _targets()


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Checks:
    """What a listener may check, made from real parts (files in ``tmp``)."""

    tmp: Path
    signer: Signer = field(default_factory=lambda: Signer("kid-1", "ES256"))
    metrics: Metrics = field(default_factory=lambda: Metrics(process=False))
    clock: Clock = field(default_factory=Clock)

    def gate(self, **kinds: object) -> Gate:
        arguments: dict[str, object] = {}
        if "authorization" in kinds:
            arguments["authorization"] = Authorization(AuthorizationConfig(identities=[ADMIN]))
        if "jwt" in kinds:
            jwks = self.tmp / "jwks.json"
            jwks.write_text(json.dumps({"keys": [self.signer.jwk()]}))
            provider = JwtProviderConfig(
                issuer=ISSUER,
                audiences=["orders"],
                jwks_file=str(jwks),
                forward_claims={"sub": "x-user"},
            )
            config = JwtConfig(providers=[provider], required=bool(kinds["jwt"]))
            authenticator = JwtAuthenticator(config, "test", self.metrics)
            for each in authenticator.providers.values():
                each.reload_file()
            arguments["jwt"] = authenticator
        if "api_keys" in kinds:
            keys = self.tmp / "keys"
            keys.write_text(f"{KEY} billing\n")
            api_keys = ApiKeys(
                ApiKeysConfig(
                    file=str(keys), required=bool(kinds["api_keys"]), query_parameter="key"
                ),
                "test",
                self.metrics,
            )
            api_keys.load()
            arguments["api_keys"] = api_keys
        if "rate_limit" in kinds:
            limit = kinds["rate_limit"]
            if not isinstance(limit, RateLimitConfig):
                limit = RateLimitConfig(rate=1, burst=1, key="client")
            arguments["rate_limit"] = RateLimit(limit)
        return Gate(route, monotonic=self.clock, **arguments)  # type: ignore[arg-type]


@pytest.fixture
def checks(tmp_path: Path) -> Checks:
    global TARGETS
    TARGETS = _targets()  # fresh buckets for every test
    return Checks(tmp_path)


Expect = tuple[int, str] | Callable[[Admitted], bool]


def _bearer(checks: Checks, **claims: Any) -> str:
    return f"Authorization: Bearer {checks.signer.token(**claims)}\r\n"


CASES: list[tuple[str, dict[str, object], Callable[[Checks], tuple[RequestHead, Peer]], Expect]] = [
    ("no checks: the route", {}, lambda c: (request("/open"), Peer()), lambda a: not a.headers),
    ("no route: 404 NR", {}, lambda c: (request("/nowhere"), Peer()), (404, flags.NR)),
    (
        "identity not allowed: 403",
        {"authorization": True},
        lambda c: (request("/open"), Peer(identity=b"spiffe://other")),
        (403, flags.UAEX),
    ),
    (
        "no certificate: 403",
        {"authorization": True},
        lambda c: (request("/open"), Peer()),
        (403, flags.UAEX),
    ),
    (
        "identity allowed",
        {"authorization": True},
        lambda c: (request("/open"), Peer(identity=ADMIN.encode())),
        lambda a: a.target.route.name == "open",
    ),
    (
        "identity is checked before the token",
        {"authorization": True, "jwt": True},
        lambda c: (request("/open", "Authorization: Bearer not.a.token\r\n"), Peer()),
        (403, flags.UAEX),
    ),
    (
        "token required, none: 401",
        {"jwt": True},
        lambda c: (request("/open"), Peer()),
        (401, flags.UAEX),
    ),
    (
        "bad token: 401",
        {"jwt": False},
        lambda c: (request("/open", _bearer(c, aud="elsewhere")), Peer()),
        (401, flags.UAEX),
    ),
    (
        "good token: claims forwarded",
        {"jwt": True},
        lambda c: (request("/open", _bearer(c, sub="alice")), Peer()),
        lambda a: a.headers == ((b"x-user", b"alice"),),
    ),
    (
        "the route waives the token",
        {"jwt": True},
        lambda c: (request("/free"), Peer()),
        lambda a: a.target.route.name == "free",
    ),
    (
        "unknown API key: 401",
        {"api_keys": False},
        lambda c: (request("/open", "X-Api-Key: not-a-known-key-at-all\r\n"), Peer()),
        (401, flags.UAEX),
    ),
    (
        "API key in the header: the caller named",
        {"api_keys": True},
        lambda c: (request("/open", f"X-Api-Key: {KEY}\r\n"), Peer()),
        lambda a: a.headers == ((b"x-pillion-api-key-name", b"billing"),),
    ),
    (
        "API key required by the route, none: 401",
        {"api_keys": False},
        lambda c: (request("/keyed"), Peer()),
        (401, flags.UAEX),
    ),
    (
        "API key not required: passes",
        {"api_keys": False},
        lambda c: (request("/open"), Peer()),
        lambda a: not a.headers,
    ),
    (
        "route identity allow-list: 403",
        {},
        lambda c: (request("/admin"), Peer(identity=b"spiffe://other")),
        (403, flags.UAEX),
    ),
    (
        "upgrade allowed by the listener",
        {},
        lambda c: (request("/open", "Connection: upgrade\r\nUpgrade: websocket\r\n"), Peer()),
        lambda a: a.upgrade == b"websocket",
    ),
    (
        "h2c is never forwarded",
        {},
        lambda c: (request("/open", "Connection: upgrade\r\nUpgrade: h2c\r\n"), Peer()),
        lambda a: a.upgrade is None,
    ),
    (
        "only the allowed protocols of a list",
        {},
        lambda c: (
            request("/open", "Connection: upgrade\r\nUpgrade: h2c, WebSocket, foo\r\n"),
            Peer(),
        ),
        lambda a: a.upgrade == b"WebSocket",
    ),
    (
        "the route's own upgrades, versions kept",
        {},
        lambda c: (request("/foo", "Connection: upgrade\r\nUpgrade: websocket, foo/2\r\n"), Peer()),
        lambda a: a.upgrade == b"foo/2",
    ),
    (
        "a route that allows none",
        {},
        lambda c: (request("/none", "Connection: upgrade\r\nUpgrade: websocket\r\n"), Peer()),
        lambda a: a.upgrade is None,
    ),
    (
        "Upgrade without Connection: upgrade is not an upgrade",
        {},
        lambda c: (request("/open", "Upgrade: websocket\r\n"), Peer()),
        lambda a: a.upgrade is None,
    ),
    (
        "an upgrade with a body is served as plain HTTP",
        {},
        lambda c: (
            request(
                "/open",
                "Connection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 2\r\n",
                "hi",
            ),
            Peer(),
        ),
        lambda a: a.upgrade is None,
    ),
]


@pytest.mark.parametrize(
    ("kinds", "make", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decisions(
    checks: Checks,
    kinds: dict[str, object],
    make: Callable[[Checks], tuple[RequestHead, Peer]],
    expect: Expect,
) -> None:
    head, peer = make(checks)
    decision = checks.gate(**kinds).decide(head, peer)
    if isinstance(expect, tuple):
        assert isinstance(decision, Refused), decision
        assert (decision.status, decision.flag) == expect
    else:
        assert isinstance(decision, Admitted), decision
        assert expect(decision)


def test_the_listener_rate_limit_refills_with_time(checks: Checks) -> None:
    gate = checks.gate(rate_limit=True)
    assert isinstance(gate.decide(request(), Peer()), Admitted)
    limited = gate.decide(request(), Peer())
    assert isinstance(limited, Refused)
    assert (limited.status, limited.flag) == (429, flags.RL)
    assert limited.headers == ((b"retry-after", b"1"),)
    assert isinstance(gate.decide(request(), Peer(client_ip=b"10.0.0.8")), Admitted)  # per client
    checks.clock.now += 1.0
    assert isinstance(gate.decide(request(), Peer()), Admitted)


def test_a_refused_request_takes_no_rate_limit_token(checks: Checks) -> None:
    gate = checks.gate(jwt=True, rate_limit=True)
    for _ in range(3):  # a bad token is refused before the limit
        refused = gate.decide(request("/open", _bearer(checks, aud="elsewhere")), Peer())
        assert isinstance(refused, Refused)
        assert refused.status == 401
    assert isinstance(gate.decide(request("/open", _bearer(checks)), Peer()), Admitted)


@pytest.mark.parametrize(
    ("kind", "header", "caller"),
    [("jwt", "x-user", "jwt"), ("api_keys", "x-pillion-api-key-name", "key")],
)
def test_a_limit_keyed_by_a_header_the_gate_writes_reads_the_verified_value(
    checks: Checks, kind: str, header: str, caller: str
) -> None:
    limit = RateLimitConfig(rate=1, burst=1, key="header", header=header)
    gate = checks.gate(**{kind: True}, rate_limit=limit)
    credentials = {"jwt": _bearer(checks), "key": f"X-Api-Key: {KEY}\r\n"}[caller]
    admitted = gate.decide(request("/open", credentials + f"{header}: first\r\n"), Peer())
    assert isinstance(admitted, Admitted)
    # a client that names itself anew each time still has the one verified name
    for value in ("second", "third"):
        refused = gate.decide(request("/open", credentials + f"{header}: {value}\r\n"), Peer())
        assert isinstance(refused, Refused)
        assert refused.status == 429
    if kind == "jwt":  # and another user has a bucket of their own
        other = _bearer(checks, sub="bob")
        assert isinstance(gate.decide(request("/open", other), Peer()), Admitted)


def test_a_refusal_on_a_route_names_the_route(checks: Checks) -> None:
    gate = checks.gate()
    assert isinstance(gate.decide(request("/limited"), Peer()), Admitted)
    refused = gate.decide(request("/limited"), Peer())
    assert isinstance(refused, Refused)
    assert refused.status == 429
    assert refused.target is TARGETS["/limited"]  # its counts are the route's
    assert gate.decide(request("/nowhere"), Peer()).target is None  # type: ignore[union-attr]


def test_401_challenges(checks: Checks) -> None:
    gate = checks.gate(jwt=True)
    missing = gate.decide(request(), Peer())
    assert isinstance(missing, Refused)
    assert missing.headers == ((b"www-authenticate", b'Bearer realm="pillion"'),)
    bad = gate.decide(request("/open", _bearer(checks, aud="elsewhere")), Peer())
    assert isinstance(bad, Refused)
    [(name, challenge)] = bad.headers
    assert name == b"www-authenticate"
    assert challenge.startswith(b'Bearer realm="pillion", error="invalid_token"')


def test_the_api_key_leaves_the_query_and_the_gate_strips_its_headers(checks: Checks) -> None:
    gate = checks.gate(api_keys=True, jwt=False)
    head = request(f"/open?a=1&key={KEY}&b=2")
    decision = gate.decide(head, Peer())
    assert isinstance(decision, Admitted)
    assert head.target == b"/open?a=1&b=2"
    assert decision.headers == ((b"x-pillion-api-key-name", b"billing"),)
    assert gate.strip == {b"x-api-key", b"x-pillion-api-key-name", b"x-user"}
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    assert digest not in repr(decision)


def test_deciding_again_after_a_wait_changes_nothing(checks: Checks) -> None:
    """After ``Pending`` the gate decides again: the checks before the key fetch
    (identity, token) take nothing, so the second decision equals the first."""
    gate = checks.gate(authorization=True, jwt=True, rate_limit=True)
    head = request("/open", _bearer(checks, sub="bob"))
    peer = Peer(identity=ADMIN.encode())
    first = gate.decide(head, peer)
    assert isinstance(first, Admitted)
    checks.clock.now += 1.0
    second = gate.decide(head, peer, waited=True)
    assert isinstance(second, Admitted)
    assert first.headers == second.headers == ((b"x-user", b"bob"),)
