"""The inbound proxy end to end: raw sockets -> ``pillion run`` -> a scripted app."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import (
    blackholed_port,
    free_port,
    http,
    read_by_peer,
    running_pillion,
    wait_until,
)
from tests.proxy.conftest import ProxyPod
from tests.proxy.harness import Client, ScriptedUpstream, get


def test_get_is_forwarded_with_forwarding_headers(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    response = client.request(get("/hello?x=1", "X-Request-Id: rid-1\r\nUser-Agent: t\r\n"))
    assert response.status == 200
    [seen] = app.requests
    assert (seen.method, seen.target) == (b"GET", b"/hello?x=1")
    assert seen.header(b"host") == b"test"
    assert seen.header(b"x-forwarded-for") == b"127.0.0.1"
    assert seen.header(b"x-forwarded-proto") == b"http"
    assert seen.header(b"x-forwarded-host") == b"test"
    assert seen.header(b"x-request-id") == b"rid-1"
    assert seen.header(b"traceparent") is not None
    # the app's hop-by-hop response headers stop at Pillion
    assert response.header(b"x-hop") is None
    assert response.header(b"keep-alive") is None
    assert response.header(b"connection") is None
    client.close()


def test_keep_alive_on_both_sides(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    before = app.connections
    for i in range(5):
        assert client.request(get(f"/{i}")).status == 200
    assert app.connections - before <= 1  # one pooled upstream connection served all five
    assert [r.target for r in app.requests] == [b"/0", b"/1", b"/2", b"/3", b"/4"]
    client.close()


def test_pipelined_requests_answered_in_order(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.send(b"".join(get(f"/p{i}") for i in range(10)))
    responses = client.read(10)
    assert [r.json()["target"] for r in responses] == [f"/p{i}" for i in range(10)]
    client.close()


def test_content_length_body_streams_both_ways(pod: ProxyPod, app: ScriptedUpstream) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    client = Client(pod.port)
    response = client.request(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert response.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    app.behaviour = "big"
    response = client.request(get("/download"))
    assert len(response.body) == 8 * 1024 * 1024
    client.close()


def test_chunked_request_and_response(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    response = client.request(
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"
    )
    assert response.json()["body_sha256"] == hashlib.sha256(b"abcdefg").hexdigest()
    assert app.requests[0].header(b"transfer-encoding") == b"chunked"
    app.behaviour = "chunked"
    response = client.request(get())
    assert response.body == b"hello world"
    assert response.header(b"transfer-encoding") == b"chunked"
    client.close()


def test_close_delimited_response_to_11_and_10_clients(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    app.behaviour = "close-delimited"
    client = Client(pod.port)
    response = client.request(get())
    assert (response.body, response.header(b"transfer-encoding")) == (b"until the end", b"chunked")
    assert client.request(get()).body == b"until the end"  # still keep-alive to the client
    client.close()
    client = Client(pod.port)
    client.send(b"GET / HTTP/1.0\r\n\r\n")
    raw = client.read_raw_until_close()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\nuntil the end")
    assert b"transfer-encoding" not in raw.lower()


def test_expect_100_continue(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.send(b"PUT /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    client.sock.settimeout(5)
    interim = client.sock.recv(100)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    response = client.request(b"hello")
    assert response.json()["body_length"] == 5
    assert app.requests[0].header(b"expect") is None
    client.close()


def test_expect_with_too_large_body_gets_413_without_100(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    client = Client(pod.port)
    client.send(
        b"PUT /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n"
    )
    raw = client.read_raw_until_close()
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert app.requests == []


def test_head_204_304_have_no_body(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/after-head"))
    client.sock.settimeout(5)
    raw = b""
    while raw.count(b"HTTP/1.1 200") < 2 or not raw.endswith(b"}"):
        raw += client.sock.recv(65536)
    head_response, second = raw.split(b"HTTP/1.1 200 OK", 2)[1:]
    assert head_response.endswith(b"\r\n\r\n")  # headers only
    assert b"content-length:" in head_response.lower()
    assert b"/after-head" in second
    client.close()
    for status in (204, 304):
        app.behaviour = f"status:{status}"
        client = Client(pod.port)
        client.send(get() + get())
        first, again = client.read(2)
        assert (first.status, first.body, again.status) == (status, b"", status)
        client.close()


def test_hop_by_hop_request_headers_removed(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.request(
        get("/", "Connection: X-Private\r\nX-Private: 1\r\nKeep-Alive: t=1\r\nTE: gzip\r\n"
            "Proxy-Connection: keep-alive\r\nX-Public: 2\r\n")
    )  # fmt: skip
    names = {name.lower() for name, _ in app.requests[0].headers}
    assert b"x-public" in names
    assert not names & {b"connection", b"x-private", b"keep-alive", b"te", b"proxy-connection"}
    client.close()


SMUGGLING = [
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX-A : 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX-\x01: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
]


@pytest.mark.parametrize("raw", SMUGGLING, ids=range(len(SMUGGLING)))
def test_smuggling_gets_400_close_and_never_reaches_the_app(
    pod: ProxyPod, app: ScriptedUpstream, raw: bytes
) -> None:
    client = Client(pod.port)
    client.send(raw)
    answer = client.read_raw_until_close()  # ...and the connection is closed
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in answer
    assert app.requests == []


def test_malformed_chunk_after_head_stops_the_request(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    answer = client.read_raw_until_close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert not any(r.body for r in app.requests)  # the app never got a complete request


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("first_line", "rest", "status"),
    [
        (b"1;", b"e" * (4 << 20), 400),  # an extension of 4 MiB
        (b"", b"0" * (1 << 20) + b"1", 400),  # a size with 1 MiB of leading zeros
        (b"1;", b"e" * 20_000, 400),  # 20 KiB in the same read as the head
        (b"1;a=b\r\nx\r\n", b"".join(b"1;%s\r\nx\r\n" % (b"e" * 1000) for _ in range(20)), 413),
    ],
    ids=["4 MiB extension", "leading zeros", "one read", "extensions add up"],
)
def test_chunk_lines_are_bounded(
    pod: ProxyPod, app: ScriptedUpstream, first_line: bytes, rest: bytes, status: int
) -> None:
    client = Client(pod.port)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered and closed early
        client.send(CHUNKED_HEAD + first_line + rest + b"\r\nx\r\n0\r\n\r\n")
    assert client.read_raw_until_close().startswith(b"HTTP/1.1 %d " % status)
    assert not any(r.body for r in app.requests)  # the app never got a complete request


def test_chunk_extensions_within_the_limits_pass(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    response = client.request(
        CHUNKED_HEAD + b"3;name=" + b"v" * 1000 + b"\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
    )
    assert response.status == 200
    assert response.json()["body_sha256"] == hashlib.sha256(b"abc").hexdigest()
    client.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (get("/" + "a" * 3000), 414),
        (get("/", "X-Big: " + "b" * 9000 + "\r\n"), 431),
        (get("/", "".join(f"X-{i}: 1\r\n" for i in range(60))), 431),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n", 413),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n", 501),
    ],
)
def test_limits_have_their_status(
    pod: ProxyPod, app: ScriptedUpstream, raw: bytes, status: int
) -> None:
    client = Client(pod.port)
    client.send(raw)
    assert client.read_raw_until_close().startswith(b"HTTP/1.1 %d " % status)
    assert app.requests == []


def test_chunked_body_over_the_limit_is_413(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    block = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
    try:
        for _ in range(6):
            client.send(block)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert client.read_raw_until_close().startswith(b"HTTP/1.1 413 ")


def test_slow_headers_get_408(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.sock.setblocking(False)
    answer = b""
    for byte in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: loris\r\n\r\n":
        client.sock.send(bytes([byte]))  # one byte per 100 ms: past the 1 s header timeout
        time.sleep(0.1)
        with contextlib.suppress(BlockingIOError):
            answer += client.sock.recv(4096)
        if answer:
            break
    assert answer.startswith(b"HTTP/1.1 408 ")  # answered before the head was all sent
    client.sock.setblocking(True)
    assert b"request header timeout" in answer + client.read_raw_until_close()  # then EOF
    assert app.requests == []


def test_every_slowloris_connection_gets_its_408(pod: ProxyPod, app: ScriptedUpstream) -> None:
    # Each sends a byte every 100 ms and looks for an answer only after 3 s (the
    # header timeout is 1 s). Closed at once, its next byte would meet a reset,
    # and the reset throws the unread 408 away; lingering, the 408 waits for it.
    clients = [socket.create_connection(("127.0.0.1", pod.port)) for _ in range(150)]
    try:
        for sock in clients:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        for _ in range(30):
            for sock in clients:
                with contextlib.suppress(OSError):
                    sock.send(b"X")
            time.sleep(0.1)
        answers = [read_until_closed(sock) for sock in clients]
    finally:
        for sock in clients:
            sock.close()
    missing = sum(not answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    assert missing == 0, f"{missing} of {len(clients)} without their 408"
    assert app.requests == []


def read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_upstream_refused_is_503_uf(pod: ProxyPod) -> None:
    client = Client(pod.dead_port)
    response = client.request(get())
    assert response.status == 503
    assert b"upstream connect error" in response.body
    assert client.request(get()).status == 503  # the client connection stays usable
    client.close()
    pod.wait_record(lambda r: r["flags"] == "UF" and r["code"] == 503)


def test_upstream_reset_mid_response_closes_the_client(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    app.behaviour = "reset-mid-response"
    client = Client(pod.port)
    client.send(get("/reset"))
    raw = client.read_raw_until_close()
    assert raw.startswith(b"HTTP/1.1 200 OK")
    assert raw.endswith(b"only ten b")  # truncated, and the connection closed: visible
    pod.wait_record(lambda r: r["flags"] == "UC" and r["path"] == "/reset")


def test_upstream_reset_before_response_is_502(pod: ProxyPod, app: ScriptedUpstream) -> None:
    app.behaviour = "reset-before-response"
    client = Client(pod.port)
    response = client.request(
        b"POST /r HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"  # has a body: no retry
    )
    assert response.status == 502
    client.close()


def test_malformed_status_line_is_502_upe(pod: ProxyPod, app: ScriptedUpstream) -> None:
    app.behaviour = "malformed"
    client = Client(pod.port)
    assert client.request(get("/bad-status")).status == 502
    client.close()
    pod.wait_record(lambda r: r["flags"] == "UPE" and r["path"] == "/bad-status")


def test_more_body_than_content_length_is_cut_and_not_reused(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    app.behaviour = "extra-body"
    client = Client(pod.port)
    first = client.request(get("/1"))
    assert first.body == b"ok"
    app.behaviour = "echo"
    second = client.request(get("/2"))
    assert second.json()["target"] == "/2"  # a fresh upstream connection, not the dirty one
    client.close()


def test_upstream_hang_is_504_ut(pod: ProxyPod, app: ScriptedUpstream) -> None:
    app.behaviour = "hang"
    client = Client(pod.port)
    response = client.request(get("/hang"))
    assert response.status == 504
    client.close()
    pod.wait_record(lambda r: r["flags"] == "UT" and r["path"] == "/hang")


def test_client_closing_mid_request_and_mid_response(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.send(b"POST /half HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly some")
    wait_until(lambda: read_by_peer(client.sock))  # Pillion has the half it was sent
    client.close()
    app.behaviour = "huge"  # 64 MiB: more than the socket buffers hold, so it cannot finish
    client = Client(pod.port)
    client.send(get("/abandon"))
    client.sock.recv(1000)
    client.close()
    pod.wait_record(lambda r: r["path"] == "/abandon" and r["flags"] == "DC")
    app.behaviour = "echo"
    assert Client(pod.port).request(get("/still-fine")).status == 200
    pod.wait_record(lambda r: r["path"] == "/half" and r["flags"] == "DC")


def test_access_log_fields_and_metrics(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.request(get("/logged", "X-Request-Id: log-me\r\nUser-Agent: probe/1\r\n"))
    client.close()
    record = pod.wait_record(lambda r: r["request_id"] == "log-me")
    assert record["listener"] == "main"
    assert record["method"] == "GET"
    assert record["path"] == "/logged"
    assert record["code"] == 200
    assert record["flags"] == "-"
    assert record["user_agent"] == "probe/1"
    assert record["client"] == "127.0.0.1"
    assert isinstance(record["duration_ms"], float)
    assert str(record["traceparent"]).startswith("00-")
    assert record["upstream"] == f"127.0.0.1:{app.port}"
    assert (record["route"], record["cluster"], record["retries"]) == (None, None, 0)
    _, _, metrics = http("GET", f"{pod.pillion.status_url}/metrics")
    text = metrics.decode()
    assert (
        'pillion_requests_total{cluster="",code="200",flags="-",grpc_status="",listener="main",method="GET",route=""}'
        in text
    )
    assert 'pillion_request_duration_seconds_bucket{le="0.00025",listener="main"}' in text
    assert 'pillion_connections_active{listener="main"}' in text
    assert 'pillion_upstream_connect_errors_total{listener="dead"}' in text
    assert "pillion_request_bytes_bucket" in text
    assert "pillion_response_bytes_bucket" in text


def test_promtool_is_clean_with_proxy_metrics(pod: ProxyPod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    client.request(get("/for-metrics"))
    client.close()
    Client(pod.dead_port).request(get())
    _, _, metrics = http("GET", f"{pod.pillion.status_url}/metrics")
    assert b"pillion_requests_total" in metrics
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package; `make test` installs it"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=metrics, capture_output=True, timeout=30, check=False
    )
    assert (check.returncode, check.stdout + check.stderr) == (0, b"")


def test_request_on_a_pooled_connection_the_app_closed_is_retried_once(
    pod: ProxyPod, app: ScriptedUpstream
) -> None:
    app.behaviour = "one-per-connection"  # answers once, then closes on the next request
    client = Client(pod.port)
    assert client.request(get("/first")).status == 200
    # Sent on the pooled connection, which the app closes unanswered: a GET without a
    # body never reached the app's handler, so Pillion sends it again on a new one.
    response = client.request(get("/second"))
    assert response.status == 200
    assert response.json()["target"] == "/second"
    # With a body it is not replayed: the app may have acted on it.
    response = client.request(b"POST /third HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
    assert response.status == 502
    client.close()


def test_upstream_connect_timeout_is_503_uf(tmp_path: Path) -> None:
    port = free_port()
    proxy = (
        f"proxy:\n  inbound:\n    - listen: 127.0.0.1:{port}\n"
        f"      timeouts: {{connect: 300ms}}\n  access_log: null\n"
    )
    with blackholed_port() as app_port, running_pillion(tmp_path, proxy, app_port):
        client = Client(port)
        response = client.request(get())
        assert response.status == 503
        assert response.body == b"upstream connect timeout\n"
        client.close()
