from __future__ import annotations

from pillion.http.response import ResponseHead
from pillion.proxy.forwarding import request_head_for_upstream, response_headers_for_client
from pillion.telemetry.tracecontext import valid_traceparent
from tests.proxy.harness import parse_head


def forwarded(raw: bytes) -> tuple[list[bytes], bytes, bytes]:
    wire, ids = request_head_for_upstream(parse_head(raw), b"10.1.2.3", b"http", b"127.0.0.1:8080")
    assert wire.endswith(b"\r\n\r\n")
    return wire[:-4].split(b"\r\n"), ids.request_id, ids.traceparent


def test_hop_by_hop_fields_are_removed_with_those_named_in_connection() -> None:
    lines, _, _ = forwarded(
        b"GET /p HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, X-Secret-Hop\r\n"
        b"Keep-Alive: timeout=5\r\nTE: gzip\r\nX-Secret-Hop: 1\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
        b"Proxy-Authorization: Basic eA==\r\nX-Kept: yes\r\n\r\n"
    )
    names = {line.split(b":")[0].lower() for line in lines[1:]}
    assert lines[0] == b"GET /p HTTP/1.1"
    assert b"x-kept" in names
    dropped = {b"connection", b"keep-alive", b"te", b"x-secret-hop", b"upgrade", b"http2-settings"}
    assert not names & (dropped | {b"proxy-authorization"})


def test_te_trailers_is_kept_and_any_other_te_dropped() -> None:
    lines, _, _ = forwarded(
        b"POST /svc.Greeter/Hello HTTP/1.1\r\nHost: app\r\nConnection: TE\r\n"
        b"TE: gzip, trailers\r\nContent-Length: 0\r\n\r\n"
    )
    assert [line for line in lines if line.lower().startswith(b"te:")] == [b"te: trailers"]
    lines, _, _ = forwarded(b"GET / HTTP/1.1\r\nHost: app\r\nTE: deflate;q=0.5\r\n\r\n")
    assert not [line for line in lines if line.lower().startswith(b"te:")]


def test_an_upgrade_travels_only_as_admitted() -> None:
    head = parse_head(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    assert head.upgrade
    plain, _ = request_head_for_upstream(head, b"10.0.0.1", b"http", b"a")
    assert b"upgrade" not in plain.lower()  # not admitted: served as plain HTTP
    admitted, _ = request_head_for_upstream(head, b"10.0.0.1", b"http", b"a", upgrade=b"websocket")
    assert b"\r\nconnection: upgrade\r\nupgrade: websocket\r\n" in admitted


def test_forwarded_for_proto_host_request_id_traceparent() -> None:
    lines, request_id, traceparent = forwarded(
        b"GET / HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 1.1.1.1\r\n"
        b"X-Forwarded-Proto: https\r\nX-Request-Id: req-42\r\n"
        b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"
    )
    assert b"host: shop.example" in lines
    assert b"x-forwarded-for: 1.1.1.1, 10.1.2.3" in lines
    assert b"x-forwarded-proto: http" in lines  # set by the hop that terminates the connection
    assert b"x-forwarded-host: shop.example" in lines
    assert request_id == b"req-42"
    assert traceparent == b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert sum(line.lower().startswith(b"x-request-id") for line in lines) == 1


def test_ids_are_generated_when_absent_or_invalid() -> None:
    _, request_id, traceparent = forwarded(
        b"GET / HTTP/1.1\r\nHost: a\r\ntraceparent: 00-00000000000000000000000000000000-"
        b"b7ad6b7169203331-01\r\nX-Request-Id: \x80bad\r\n\r\n"
    )
    assert len(request_id) == 36
    assert valid_traceparent(traceparent)
    assert not traceparent.startswith(b"00-00000000")


def test_framing_is_pillions_own() -> None:
    lines, _, _ = forwarded(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    assert b"content-length: 3" in lines
    lines, _, _ = forwarded(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert b"transfer-encoding: chunked" in lines
    lines, _, _ = forwarded(b"GET / HTTP/1.0\r\n\r\n")
    assert b"host: 127.0.0.1:8080" in lines


def test_response_hop_by_hop_removed() -> None:
    head = ResponseHead(
        200,
        [(b"Connection", b"X-Internal"), (b"X-Internal", b"1"), (b"Keep-Alive", b"t=1"),
         (b"Content-Length", b"3"), (b"Set-Cookie", b"a=b")],
        True, "length", 3, {b"x-internal"},
    )  # fmt: skip
    assert response_headers_for_client(head) == [(b"Set-Cookie", b"a=b")]


def test_traceparent_validation() -> None:
    good = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert valid_traceparent(good)
    assert not valid_traceparent(good.upper())
    assert not valid_traceparent(b"ff" + good[2:])
    assert not valid_traceparent(good + b"-extra")
    assert valid_traceparent(b"01" + good[2:] + b"-future")
