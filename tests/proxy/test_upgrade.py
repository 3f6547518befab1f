"""Upgrade requests (WebSocket and others): tunnelled both ways after the app's 101,
only when the gate admitted the request and its route allows the protocol; h2c
and other upgrades are removed, and nothing smuggled behind one escapes the gate."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.helpers import free_port, running_pillion
from tests.proxy.conftest import ProxyPod
from tests.proxy.harness import Client, ScriptedUpstream
from tests.proxy.test_jwt import ISSUER, Signer

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _read_until(client: Client, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = client.sock.recv(65536)
        assert chunk, f"closed before {marker!r}: {data!r}"
        data += chunk
    return data


def test_websocket_is_tunnelled_both_ways(pod: ProxyPod, app: ScriptedUpstream) -> None:
    app.behaviour = "websocket"
    client = Client(pod.port)
    client.send(UPGRADE + b"early-bytes|")  # sent before the 101: held, then delivered
    head = _read_until(client, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"upgrade: websocket\r\n" in head.lower()
    assert b"connection: upgrade\r\n" in head.lower()
    assert b"sec-websocket-accept: x" in head.lower()
    rest = head.split(b"\r\n\r\n", 1)[1]
    rest += _read_until(client, b"early-bytes|") if b"early-bytes|" not in rest else b""
    for message in (b"ping-1", b"x" * 200_000, b"ping-2"):
        client.send(message)
        echoed = b""
        while len(echoed) < len(message):
            echoed += client.sock.recv(65536)
        assert echoed == message
    [seen] = app.requests
    assert seen.header(b"upgrade") == b"websocket"
    assert seen.header(b"connection") == b"upgrade"
    assert seen.header(b"sec-websocket-key") == b"dGhlIHNhbXBsZSBub25jZQ=="
    client.close()
    record = pod.wait_record(lambda r: r["path"] == "/ws" and r["code"] == 101)
    assert record["flags"] == "-"
    assert record["bytes_in"] == len(b"early-bytes|ping-1ping-2") + 200_000
    assert record["bytes_out"] == record["bytes_in"]


def test_an_app_that_declines_the_upgrade_answers_plain_http(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    client = Client(pod.port)  # the echo app answers 200, not 101
    client.send(UPGRADE)
    raw = client.read_raw_until_close()  # answered, then closed: no tunnel
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"target": "/ws"' in raw


def test_a_peer_that_closes_abruptly_ends_the_tunnel(pod: ProxyPod, app: ScriptedUpstream) -> None:
    app.behaviour = "websocket-abrupt"
    client = Client(pod.port)
    client.send(UPGRADE)
    head = _read_until(client, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert client.is_closed_by_peer()
    pod.wait_record(lambda r: r["path"] == "/ws" and r["code"] == 101)


# -- upgrades meet the gate: nothing protected is reachable through one --

API_KEY = "upgrade-test-key-0123456789"


@dataclass
class GuardedPod:
    """Pillion in front of an app that would switch to any protocol asked for."""

    upstream: ScriptedUpstream
    keyed: int  # listener with API keys: /public and /limited need none, /admin does
    tokened: int  # listener with JWT required everywhere
    outbound: int  # the app's outbound listener, to a cluster of one (the same app)
    signer: Signer


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedPod]:
    directory = tmp_path_factory.mktemp("guarded")
    (directory / "keys").write_text(f"{API_KEY} tester\n")
    signer = Signer("k1", "ES256")
    (directory / "jwks.json").write_text(json.dumps({"keys": [signer.jwk()]}))
    keyed, tokened, outbound = free_port(), free_port(), free_port()
    upstream = ScriptedUpstream().start()
    proxy = f"""
proxy:
  outbound:
    - {{name: calls, listen: 127.0.0.1:{outbound}, cluster: peer}}
  clusters:
    - {{name: peer, endpoints: [127.0.0.1:{upstream.port}]}}
  inbound:
    - name: keyed
      listen: 127.0.0.1:{keyed}
      api_keys: {{file: {directory / "keys"}, required: true}}
      routes:
        - {{name: public, match: {{prefix: /public}}, api_key_required: false}}
        - name: limited
          match: {{prefix: /limited}}
          api_key_required: false
          rate_limit: {{rate: 0.001, burst: 1, key: global}}
        - {{name: foo, match: {{prefix: /foo}}, api_key_required: false, upgrades: [foo]}}
        - {{name: admin, match: {{prefix: /admin}}}}
    - name: tokened
      listen: 127.0.0.1:{tokened}
      jwt:
        required: true
        providers:
          - {{issuer: "{ISSUER}", audiences: [orders], jwks_file: {directory / "jwks.json"}}}
"""
    try:
        with running_pillion(directory, proxy, upstream.port):
            yield GuardedPod(upstream, keyed, tokened, outbound, signer)
    finally:
        upstream.stop()


@pytest.fixture
def careless(guarded: GuardedPod) -> ScriptedUpstream:
    """The app, switching protocols whenever it sees an upgrade."""
    guarded.upstream.behaviour = "upgrade-any"
    guarded.upstream.requests.clear()
    guarded.upstream.tunnelled.clear()
    return guarded.upstream


def _upgrade(path: str, protocol: str, extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        f"Upgrade: {protocol}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n{extra}\r\n"
    ).encode()


SMUGGLED = b"GET /admin/secret HTTP/1.1\r\nHost: t\r\n\r\n"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def test_h2c_is_stripped_and_what_follows_meets_the_gate(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.keyed)
    client.send(_upgrade("/public", "h2c") + SMUGGLED)
    first, second = client.read(2)
    assert first.status == 200  # plain HTTP/1.1: the app never saw the upgrade
    assert second.status == 401  # the smuggled request was parsed, and refused
    [seen] = careless.requests
    assert seen.target == b"/public"
    assert seen.header(b"upgrade") is None
    assert seen.header(b"http2-settings") is None
    assert b"upgrade" not in (seen.header(b"connection") or b"").lower()
    assert careless.tunnelled == b""


def test_an_http2_preface_after_h2c_never_reaches_the_app(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.keyed)
    client.send(_upgrade("/public", "h2c") + H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    raw = client.read_raw_until_close()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.count(b"HTTP/1.1 ") == 2  # then Pillion's own refusal of "PRI * HTTP/2.0"
    assert b"HTTP/1.1 505 " in raw or b"HTTP/1.1 400 " in raw
    assert [r.target for r in careless.requests] == [b"/public"]
    assert careless.tunnelled == b""


def test_an_upgrade_the_route_does_not_allow_is_removed(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.keyed)
    client.send(_upgrade("/public", "foo") + SMUGGLED * 10)
    responses = client.read(11)
    assert [r.status for r in responses] == [200] + [401] * 10
    assert [r.target for r in careless.requests] == [b"/public"]
    assert careless.requests[0].header(b"upgrade") is None
    assert careless.tunnelled == b""


def test_a_101_for_a_request_that_asked_for_none_opens_no_tunnel(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    careless.behaviour = "101-always"
    client = Client(guarded.keyed)
    client.send(_upgrade("/public", "foo") + SMUGGLED * 10)
    responses = client.read(11)
    assert responses[0].status == 502  # an app's 101 the gate did not admit
    assert [r.status for r in responses[1:]] == [401] * 10
    assert [r.target for r in careless.requests] == [b"/public"]
    assert careless.tunnelled == b""


def test_an_allowed_upgrade_on_a_protected_route_needs_the_key(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.keyed)
    client.send(_upgrade("/admin/ws", "websocket") + SMUGGLED)
    first, second = client.read(2)
    assert (first.status, second.status) == (401, 401)
    assert careless.requests == []
    keyed = Client(guarded.keyed)
    keyed.send(_upgrade("/admin/ws", "websocket", f"X-Api-Key: {API_KEY}\r\n"))
    head = _read_until(keyed, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    [seen] = careless.requests
    assert seen.header(b"upgrade") == b"websocket"
    assert seen.header(b"http2-settings") is None
    assert seen.header(b"x-api-key") is None  # the key itself never travels on


def test_an_upgrade_takes_its_token_from_the_rate_limit(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.keyed)
    client.send(_upgrade("/limited", "websocket"))
    assert _read_until(client, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
    again = Client(guarded.keyed)
    again.send(_upgrade("/limited", "websocket") + b"GET /limited HTTP/1.1\r\nHost: t\r\n\r\n")
    first, second = again.read(2)
    assert (first.status, second.status) == (429, 429)
    assert len(careless.requests) == 1
    client.close()


def test_a_route_may_allow_another_protocol(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.keyed)
    client.send(_upgrade("/foo", "websocket, foo/2") + b"payload")
    head = _read_until(client, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"upgrade: foo/2\r\n" in head.lower()
    [seen] = careless.requests
    assert seen.header(b"upgrade") == b"foo/2"  # websocket is not this route's
    echoed = head.split(b"\r\n\r\n", 1)[1]  # sent before the 101: held, then tunnelled
    while len(echoed) < len(b"payload"):
        echoed += client.sock.recv(65536)
    assert echoed == b"payload"
    assert careless.tunnelled == b"payload"
    client.close()


def test_with_jwt_an_upgrade_needs_a_valid_token(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.tokened)
    client.send(_upgrade("/ws", "websocket") + SMUGGLED)
    first, second = client.read(2)
    assert (first.status, second.status) == (401, 401)
    bad = Client(guarded.tokened)
    forged = guarded.signer.token(aud="someone-else")
    bad.send(_upgrade("/ws", "websocket", f"Authorization: Bearer {forged}\r\n") + SMUGGLED)
    assert [r.status for r in bad.read(2)] == [401, 401]
    assert careless.requests == []
    good = Client(guarded.tokened)
    token = guarded.signer.token()
    good.send(_upgrade("/ws", "websocket", f"Authorization: Bearer {token}\r\n"))
    assert _read_until(good, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
    assert [r.target for r in careless.requests] == [b"/ws"]
    good.close()


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_upgrade_request_with_a_body_is_served_as_plain_http(
    pod: ProxyPod, app: ScriptedUpstream, framing: str
) -> None:
    body = b"x" * 3000
    framed = (
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        if framing == "length"
        else b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    client = Client(pod.port)
    client.send(
        b"POST /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        + framed
        + b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    first, second = client.read(2)  # no wait for a 101: answered at once, and kept alive
    assert first.status == 200
    assert first.json()["body_length"] == len(body)
    assert second.status == 200
    assert second.json()["target"] == "/after"
    assert app.requests[0].header(b"upgrade") is None


def test_outbound_calls_upgrade_as_inbound_ones_do(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.outbound)
    client.send(_upgrade("/calls", "h2c") + b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
    first, second = client.read(2)
    assert (first.status, second.status) == (200, 200)  # plain: no h2c, parsed after
    assert [r.header(b"upgrade") for r in careless.requests] == [None, None]
    socket = Client(guarded.outbound)
    socket.send(_upgrade("/feed", "websocket") + b"frame")
    assert _read_until(socket, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
    assert careless.requests[-1].header(b"upgrade") == b"websocket"
    socket.close()


def test_a_pipelined_upgrade_waits_its_turn(
    guarded: GuardedPod, careless: ScriptedUpstream
) -> None:
    client = Client(guarded.keyed)
    client.send(
        b"GET /public/first HTTP/1.1\r\nHost: t\r\n\r\n" + _upgrade("/public/ws", "websocket")
    )
    raw = b""
    while b"\r\n\r\n" not in raw.partition(b"HTTP/1.1 101 ")[2]:  # the 101's whole head
        data = client.sock.recv(65536)
        assert data, raw
        raw += data
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")  # answered first, then the upgrade
    client.send(b"echo-me")
    assert _read_until(client, b"echo-me").endswith(b"echo-me")
    assert [r.target for r in careless.requests] == [b"/public/first", b"/public/ws"]
    client.close()


def test_curl_asking_for_h2c_gets_http_1_1(guarded: GuardedPod, careless: ScriptedUpstream) -> None:
    """``curl --http2`` on a cleartext URL offers ``Upgrade: h2c`` with
    ``HTTP2-Settings``, as real clients do: it is answered in HTTP/1.1."""
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            f"http://127.0.0.1:{guarded.keyed}/public/curl",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout == "1.1 200"
    [seen] = careless.requests
    assert seen.header(b"upgrade") is None
    assert seen.header(b"http2-settings") is None
    assert careless.tunnelled == b""
