"""Upgrade requests (WebSocket and others): tunnelled both ways after the app's 101."""

from __future__ import annotations

from tests.proxy.conftest import ProxyPod
from tests.proxy.harness import Client, ScriptedUpstream

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
