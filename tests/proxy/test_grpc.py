"""gRPC through Pillion with grpcio on both ends: the four call kinds through an
inbound listener, through an outbound one balancing three endpoints per call,
and through both with mTLS between them; Pillion's own answers as gRPC statuses,
the app's statuses relayed and counted, retries on listed codes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from pillion.demo import grpc_echo
from pillion.tls.devca import issue, new_ca
from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    json_lines,
    metric_value,
    running_pillion,
    wait_until,
)

SHOP = "spiffe://cluster.local/ns/shop/sa/checkout"


@dataclass
class Mesh:
    pillion: PillionProcess
    inbound: int  # in front of echo-a, cleartext
    limited: int  # the same, with a rate limit of one call
    outbound: int  # clusters: echo (three endpoints), secure (mTLS to ``tls_inbound``)
    tls_inbound: int  # in front of echo-a, mTLS, callers of the shop namespace only
    long: int  # in front of echo-a, no request timeout (long-lived streams)
    access_log: Path
    servers: list[grpc_echo.EchoServer]

    def records(self) -> list[dict[str, object]]:
        return json_lines(self.access_log)

    def wait_record(self, path: str, listener: str) -> dict[str, object]:
        return self.wait_for(lambda r: r["path"] == path and r["listener"] == listener)

    def wait_for(self, matches: Callable[[dict[str, object]], bool]) -> dict[str, object]:
        """The first access-log record that ``matches``, once it was written."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for record in self.records():
                if matches(record):
                    return record
            time.sleep(0.05)
        raise AssertionError("no such access log record")

    def metrics(self) -> bytes:
        return http("GET", f"{self.pillion.status_url}/metrics")[2]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    directory = tmp_path_factory.mktemp("grpc")
    ca = new_ca()
    files = {}
    for name, issued in {
        "server": issue(ca, dns_names=("localhost",), ip_addresses=("127.0.0.1",)),
        "caller": issue(ca, spiffe_id=SHOP),
    }.items():
        (directory / f"{name}.crt").write_bytes(issued.cert_pem)
        (directory / f"{name}.key").write_bytes(issued.key_pem)
        files[name] = (directory / f"{name}.crt", directory / f"{name}.key")
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    servers = [grpc_echo.serve(0, name=f"echo-{letter}") for letter in "abc"]
    inbound, limited, outbound, tls_inbound = free_port(), free_port(), free_port(), free_port()
    long = free_port()
    dead = free_port()
    access_log = directory / "access.log"
    endpoints = ", ".join(f'"{server.target}"' for server in servers)
    body = f"""
app: {{port: {servers[0].port}, protocol: http2}}
proxy:
  access_log: {{path: {access_log}, flush_interval: 10ms}}
  inbound:
    - name: in
      listen: 127.0.0.1:{inbound}
      timeouts: {{request: 1s}}
      routes:
        - match: {{prefix: /pillion.demo.Echo/}}
    - name: limited
      listen: 127.0.0.1:{limited}
      rate_limit: {{rate: 0.01, burst: 1}}
    - name: long
      listen: 127.0.0.1:{long}
      timeouts: {{request: 0}}
    - name: secure
      listen: 127.0.0.1:{tls_inbound}
      tls:
        certificates: [{{cert: {files["server"][0]}, key: {files["server"][1]}}}]
        client_ca: {directory / "ca.crt"}
      authorization: {{identity_prefixes: ["spiffe://cluster.local/ns/shop/"]}}
  outbound:
    - name: out
      listen: 127.0.0.1:{outbound}
  clusters:
    - name: echo
      endpoints: [{endpoints}]
      protocol: http2
      balancing: round_robin
      retry: {{grpc_codes: [unavailable], max_retries: 2}}
    - name: down
      endpoints: ["127.0.0.1:{dead}"]
      protocol: http2
    - name: secure
      endpoints: ["127.0.0.1:{tls_inbound}"]
      protocol: auto
      tls:
        ca: {directory / "ca.crt"}
        cert: {files["caller"][0]}
        key: {files["caller"][1]}
        server_name: localhost
"""
    try:
        with running_pillion(directory, body) as process:
            yield Mesh(process, inbound, limited, outbound, tls_inbound, long, access_log, servers)
    finally:
        for server in servers:
            server.stop()


def _all_four(channel: grpc.Channel) -> None:
    reply, initial, trailing = grpc_echo.unary(channel, b"hello")
    assert reply == b"hello"
    assert str(initial["x-served-by"]).startswith("echo-")
    assert trailing["x-echo-trailer"] == "yes"  # trailers relayed
    messages = grpc_echo.server_stream(channel, b"40:70000")  # 2.8 MB, past every window
    assert len(messages) == 40
    assert all(len(m) == 70000 for m in messages)
    assert grpc_echo.client_stream(channel, [b"x" * 50000] * 30) == b"1500000"
    chunks = [f"message-{n}".encode() for n in range(200)]
    assert grpc_echo.bidi(channel, chunks) == chunks


def test_all_four_call_kinds_through_the_inbound_proxy(mesh: Mesh) -> None:
    with grpc_echo.channel(f"127.0.0.1:{mesh.inbound}") as channel:
        _all_four(channel)
    record = mesh.wait_record(grpc_echo.UNARY, "in")
    assert record["protocol"] == "HTTP/2"
    assert record["code"] == 200
    assert record["grpc_status"] == 0


def test_all_four_call_kinds_through_the_outbound_proxy(mesh: Mesh) -> None:
    with grpc_echo.channel(f"127.0.0.1:{mesh.outbound}", authority="echo") as channel:
        _all_four(channel)


def test_all_four_call_kinds_through_both_proxies_with_mtls(mesh: Mesh) -> None:
    # the app -> outbound Pillion -> (HTTP/2 by ALPN, mTLS) -> inbound Pillion -> server
    with grpc_echo.channel(f"127.0.0.1:{mesh.outbound}", authority="secure") as channel:
        _all_four(channel)
    record = mesh.wait_record(grpc_echo.SERVER_STREAM, "secure")
    assert record["identity"] == SHOP
    assert record["protocol"] == "HTTP/2"


def test_calls_on_one_channel_are_balanced_per_call(mesh: Mesh) -> None:
    served: Counter[str] = Counter()
    with grpc_echo.channel(f"127.0.0.1:{mesh.outbound}", authority="echo") as channel:
        for _ in range(30):
            _, initial, _ = grpc_echo.unary(channel, b"who")
            served[str(initial["x-served-by"])] += 1
    # one client connection, every endpoint: round robin gives each its third
    assert served == {"echo-a": 10, "echo-b": 10, "echo-c": 10}


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    """The status of a call that must fail."""
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    raise AssertionError("the call succeeded")


def test_the_apps_status_is_relayed_logged_and_counted(mesh: Mesh) -> None:
    with grpc_echo.channel(f"127.0.0.1:{mesh.inbound}") as channel:
        assert _code(lambda: grpc_echo.unary(channel, b"status:5")) == grpc.StatusCode.NOT_FOUND
    record = mesh.wait_for(lambda r: r.get("grpc_status") == 5)
    assert record["grpc_message"] == "asked for"
    assert record["code"] == 200
    series = (
        'pillion_requests_total{cluster="",code="200",flags="-",grpc_status="5",'
        'listener="in",method="POST",route="0"}'
    )
    scrape = mesh.metrics()
    assert (metric_value(scrape, series) or 0) >= 1, [
        line for line in scrape.decode().splitlines() if 'grpc_status="5"' in line
    ]


def test_pillions_own_answers_are_grpc_statuses(mesh: Mesh) -> None:
    with grpc_echo.channel(f"127.0.0.1:{mesh.limited}") as channel:
        grpc_echo.unary(channel, b"first")  # the one call the bucket holds
        limited = _code(lambda: grpc_echo.unary(channel, b"second"))
    assert limited == grpc.StatusCode.RESOURCE_EXHAUSTED
    with grpc_echo.channel(f"127.0.0.1:{mesh.inbound}") as channel:
        unknown = channel.unary_unary("/other.Service/Method")
        assert _code(lambda: unknown(b"x")) == grpc.StatusCode.UNIMPLEMENTED  # no route
        slow = (("x-echo-delay", "3"),)  # longer than the listener's 1s request timeout
        late = _code(lambda: grpc_echo.unary(channel, b"late", metadata=slow))
        assert late == grpc.StatusCode.DEADLINE_EXCEEDED
    with grpc_echo.channel(f"127.0.0.1:{mesh.outbound}", authority="down") as channel:
        assert _code(lambda: grpc_echo.unary(channel, b"x")) == grpc.StatusCode.UNAVAILABLE
    with grpc_echo.channel(f"127.0.0.1:{mesh.tls_inbound}") as channel:  # no TLS at all
        assert _code(lambda: grpc_echo.unary(channel, b"x")) == grpc.StatusCode.UNAVAILABLE
    for flag, code in (("RL", 8), ("NR", 12), ("UT", 4), ("UF", 14)):
        record = mesh.wait_for(lambda r, flag=flag: r["flags"] == flag)  # type: ignore[misc]
        assert (record["code"], record["grpc_status"]) == (200, code)


def test_a_listed_grpc_code_is_retried(mesh: Mesh) -> None:
    series = 'pillion_upstream_retries_total{cluster="echo",reason="grpc"}'
    before = metric_value(mesh.metrics(), series) or 0
    with grpc_echo.channel(f"127.0.0.1:{mesh.outbound}", authority="echo") as channel:
        code = _code(lambda: grpc_echo.unary(channel, b"status:14"))
    assert code == grpc.StatusCode.UNAVAILABLE  # every endpoint said so, three times
    assert metric_value(mesh.metrics(), series) == before + 2


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_gigabyte_stream_to_a_reader_that_stops_keeps_memory_bounded(mesh: Mesh) -> None:
    pid = mesh.pillion.proc.pid
    before = _rss_mib(pid)
    gigabyte = 16384 * 65536
    with grpc_echo.channel(f"127.0.0.1:{mesh.long}") as channel:
        stream = iter(channel.unary_stream(grpc_echo.SERVER_STREAM)(b"16384:65536"))
        received = len(next(stream))
        # The reader stops. The server keeps writing until every window between it
        # and the reader is full; then nothing moves, and Pillion holds what it holds.
        samples: list[float] = []

        def settled() -> bool:
            samples.append(_rss_mib(pid))
            recent = samples[-20:]
            return len(recent) == 20 and max(recent) - min(recent) < 1

        wait_until(settled)
        paused = samples[-1]
        peak = paused
        for index, message in enumerate(stream):  # the reader goes on, to the end
            received += len(message)
            if index % 256 == 0:
                peak = max(peak, _rss_mib(pid))
    assert received == gigabyte
    # a window and a stream buffer on each side, not the body: far below a gigabyte
    assert paused - before < 48, (before, paused)
    assert peak - before < 48, (before, peak)


def test_an_http1_client_that_asks_for_trailers_gets_them_chunked(mesh: Mesh) -> None:
    from tests.proxy.harness import Client

    message = b"\x00\x00\x00\x00\x05hello"  # one gRPC message: not compressed, 5 bytes
    for te, trailers in ((b"te: trailers\r\n", True), (b"", False)):
        client = Client(mesh.inbound)
        client.send(
            b"POST /pillion.demo.Echo/Unary HTTP/1.1\r\nhost: t\r\n"
            b"content-type: application/grpc\r\n%scontent-length: %d\r\n\r\n%s"
            % (te, len(message), message)
        )
        raw = b""
        while not (raw.endswith(b"\r\n\r\n") and b"\r\n0\r\n" in raw):
            chunk = client.sock.recv(65536)
            assert chunk, raw
            raw += chunk
        client.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        assert message in body
        last = body[body.index(b"\r\n0\r\n") + 2 :]
        assert (b"grpc-status: 0\r\n" in last) is trailers, last
        assert (b"x-echo-trailer: yes\r\n" in last) is trailers


def test_the_deadline_reaches_the_app_capped_by_the_route(mesh: Mesh) -> None:
    with grpc_echo.channel(f"127.0.0.1:{mesh.inbound}") as channel:  # route timeout 1s
        _, _, capped = grpc_echo.unary(channel, b"d", timeout=30)
        _, _, none = grpc_echo.unary(channel, b"d")
    with grpc_echo.channel(f"127.0.0.1:{mesh.long}") as channel:  # no route timeout
        _, _, passed = grpc_echo.unary(channel, b"d", timeout=30)
    # (gRPC rounds deadlines on its side by up to about 0.1s: the bounds allow for it)
    assert 0 < float(str(capped["x-echo-deadline"])) <= 1.2  # 30s asked, the route's 1s sent
    assert 25.0 < float(str(passed["x-echo-deadline"])) <= 30.2  # the client's, as it was
    assert "x-echo-deadline" not in none  # no deadline asked: none made up
