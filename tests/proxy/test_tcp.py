"""TCP passthrough listeners against real TCP servers on loopback."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import (
    PillionProcess,
    blackholed_port,
    free_port,
    http,
    metric_value,
    refused,
    running_pillion,
    wait_until,
)


class EchoServer:
    """Echoes every byte; on the client's half-close answers ``bye`` and closes.
    ``mode="silent"`` accepts and never sends; ``mode="flood"`` sends 64 MiB."""

    def __init__(self, mode: str = "echo") -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.eofs = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.mode == "flood":
                    block = b"f" * 65536
                    for _ in range(1024):
                        conn.sendall(block)
                    return
                while data := conn.recv(65536):
                    if self.mode == "echo":
                        conn.sendall(data)
                if self.mode == "echo":
                    self.eofs += 1
                    conn.sendall(b"bye")
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


@dataclass
class TcpPod:
    pillion: PillionProcess
    echo: int
    silent: int
    refused: int
    flood: int
    capped: int

    def metric(self, line: str) -> bool:
        """Whether ``series value`` is on /metrics (values compared as numbers)."""
        series, _, expected = line.rpartition(" ")
        scrape = http("GET", f"{self.pillion.status_url}/metrics")[2]
        return metric_value(scrape, series) == float(expected)


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[TcpPod]:
    echo, silent, flood = EchoServer(), EchoServer("silent"), EchoServer("flood")
    ports = [free_port() for _ in range(5)]
    closed = free_port()
    proxy = f"""
lifecycle: {{drain_timeout: 10s}}
proxy:
  inbound: []
  access_log: null
  tcp:
    - {{name: echo, listen: 127.0.0.1:{ports[0]}, upstream: 127.0.0.1:{echo.port}}}
    - {{name: silent, listen: 127.0.0.1:{ports[1]}, upstream: 127.0.0.1:{silent.port},
        idle_timeout: 500ms}}
    - {{name: refused, listen: 127.0.0.1:{ports[2]}, upstream: 127.0.0.1:{closed}}}
    - {{name: flood, listen: 127.0.0.1:{ports[3]}, upstream: 127.0.0.1:{flood.port}}}
    - {{name: capped, listen: 127.0.0.1:{ports[4]}, upstream: 127.0.0.1:{echo.port},
        max_connections: 1}}
"""
    try:
        with running_pillion(tmp_path, proxy) as pillion:
            yield TcpPod(pillion, *ports)
    finally:
        for server in (echo, silent, flood):
            server.close()


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(1 << 20):
        chunks.append(data)
    return b"".join(chunks)


def test_bytes_both_ways_and_half_close(pod: TcpPod) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with socket.create_connection(("127.0.0.1", pod.echo), timeout=10) as client:
        sender = threading.Thread(target=client.sendall, args=(payload,))
        sender.start()
        received = b""
        while len(received) < len(payload):
            received += client.recv(1 << 20)
        sender.join()
        client.shutdown(socket.SHUT_WR)  # half-close: the upstream sees EOF and says bye
        rest = _read_all(client)
    assert received == payload
    assert rest == b"bye"
    wait_until(lambda: pod.metric('pillion_tcp_connections_active{listener="echo"} 0.0'))
    assert pod.metric('pillion_tcp_connections_total{listener="echo"} 1.0')
    assert pod.metric(f'pillion_tcp_received_bytes_total{{listener="echo"}} {len(payload)}.0')
    assert pod.metric(f'pillion_tcp_sent_bytes_total{{listener="echo"}} {len(payload) + 3}.0')


def test_refused_upstream_closes_the_client(pod: TcpPod) -> None:
    with socket.create_connection(("127.0.0.1", pod.refused), timeout=10) as client:
        assert _read_all(client) == b""
    wait_until(lambda: pod.metric('pillion_tcp_connect_errors_total{listener="refused"} 1.0'))


def test_an_upstream_that_never_answers_is_closed_when_idle(pod: TcpPod) -> None:
    with socket.create_connection(("127.0.0.1", pod.silent), timeout=10) as client:
        client.sendall(b"hello?")
        assert _read_all(client) == b""
    assert pod.pillion.wait_for_log("idle timeout")["listener"] == "silent"


def test_a_client_that_stops_reading_holds_back_the_upstream(pod: TcpPod) -> None:
    pid = pod.pillion.proc.pid

    def rss_mib() -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError

    before = rss_mib()
    with socket.create_connection(("127.0.0.1", pod.flood), timeout=30) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.recv(65536)
        time.sleep(1.0)  # the client stalls a while: the flood meets a full window
        grown = rss_mib() - before
        total = 65536 - 0
        while data := client.recv(1 << 20):
            total += len(data)
    assert grown < 16, f"{grown:.1f} MiB buffered for a client that stopped reading"
    assert total >= 64 * 1024 * 1024 - 65536


def test_max_connections(pod: TcpPod) -> None:
    with socket.create_connection(("127.0.0.1", pod.capped), timeout=10) as first:
        first.sendall(b"x")
        assert first.recv(1) == b"x"
        with socket.create_connection(("127.0.0.1", pod.capped), timeout=10) as second:
            assert _read_all(second) == b""
    wait_until(lambda: pod.metric('pillion_tcp_connections_rejected_total{listener="capped"} 1.0'))


def test_drain_waits_for_open_connections(pod: TcpPod) -> None:
    with socket.create_connection(("127.0.0.1", pod.echo), timeout=10) as client:
        client.sendall(b"a")
        assert client.recv(1) == b"a"
        pod.pillion.signal(signal.SIGTERM)
        pod.pillion.wait_for_log("stopping")
        wait_until(lambda: refused(pod.echo))  # draining: no new connection
        client.sendall(b"b")  # still served while draining
        assert client.recv(1) == b"b"
        assert pod.pillion.proc.poll() is None
    assert pod.pillion.wait_exit() == 0


def test_tcp_upstream_connect_timeout(tmp_path: Path) -> None:
    port = free_port()
    with blackholed_port() as app_port:
        proxy = (
            "proxy:\n  inbound: []\n  access_log: null\n  tcp:\n"
            f"    - {{name: t, listen: 127.0.0.1:{port}, upstream: 127.0.0.1:{app_port}, "
            "connect_timeout: 300ms}\n"
        )
        with running_pillion(tmp_path, proxy) as pillion:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                assert _read_all(client) == b""
            _, _, metrics = http("GET", f"{pillion.status_url}/metrics")
            assert b'pillion_tcp_connect_errors_total{listener="t"} 1.0' in metrics
