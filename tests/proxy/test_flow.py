"""Flow control and timers: backpressure both ways, idle timeouts, pool expiry, log sampling."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, http, running_pillion, wait_until
from tests.proxy.harness import Client, ScriptedUpstream, get, scripted_upstream


@dataclass
class Pod:
    pillion: PillionProcess
    app: ScriptedUpstream
    port: int  # "tight": short idle timeouts
    dead: int  # its upstream refuses
    access: Path
    limited: int  # rate limited by X-Api-Key

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pillion.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    directory = tmp_path_factory.mktemp("flow")
    port, dead, closed, limited = free_port(), free_port(), free_port(), free_port()
    access = directory / "access.log"
    proxy = f"""
proxy:
  inbound:
    - name: tight
      listen: 127.0.0.1:{port}
      timeouts: {{idle: 500ms, upstream_idle: 300ms, request: 30s}}
    - name: dead
      listen: 127.0.0.1:{dead}
      upstream: 127.0.0.1:{closed}
    - name: limited
      listen: 127.0.0.1:{limited}
      rate_limit: {{rate: 0.05, burst: 5, key: header, header: X-Api-Key}}
  access_log:
    path: {access}
    fields: [listener, method, path, code, flags]
    sample: 0.0
    flush_interval: 50ms
"""
    with scripted_upstream() as app, running_pillion(directory, proxy, app.port) as pillion:
        yield Pod(pillion, app, port, dead, access, limited)


@pytest.fixture
def app(pod: Pod) -> ScriptedUpstream:
    pod.app.behaviour = "echo"
    pod.app.requests.clear()
    return pod.app


def test_a_slow_client_holds_back_the_app_not_memory(pod: Pod, app: ScriptedUpstream) -> None:
    app.behaviour = "huge"  # 64 MiB
    before = pod.rss_mib()
    client = Client(pod.port)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.send(get("/huge"))
    received = len(client.sock.recv(65536))
    time.sleep(1.5)  # the client stops reading: Pillion must stop reading from the app
    grown = pod.rss_mib() - before
    while received < 64 * 1024 * 1024:
        data = client.sock.recv(1 << 20)
        assert data
        received += len(data)
    client.close()
    # measured: a few MiB with backpressure, about 60 MiB without
    assert grown < 16, f"{grown:.1f} MiB buffered for a client that stopped reading"


def test_a_slow_app_holds_back_the_client_not_memory(pod: Pod, app: ScriptedUpstream) -> None:
    app.behaviour = "slow-reader"
    body = bytes(range(256)) * (64 * 1024)  # 16 MiB
    before = pod.rss_mib()
    client = Client(pod.port, timeout=60)
    client.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
    peak = 0.0
    for offset in range(0, len(body), 1 << 20):
        client.send(body[offset : offset + (1 << 20)])
        peak = max(peak, pod.rss_mib() - before)
    [response] = client.read(1)
    assert response.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    # measured: under 1 MiB with backpressure, about 8 MiB without
    assert peak < 4, f"{peak:.1f} MiB buffered for an app that reads slowly"
    client.close()


def test_idle_client_connections_are_closed(pod: Pod, app: ScriptedUpstream) -> None:
    client = Client(pod.port)
    assert client.request(get()).status == 200
    assert client.request(get()).status == 200  # kept open while it is used
    assert client.is_closed_by_peer(timeout=30)  # then closed once idle (500ms)


def test_pooled_upstream_connections_expire_before_the_app_closes_them(
    pod: Pod, app: ScriptedUpstream
) -> None:
    client = Client(pod.port)
    assert client.request(get("/a")).status == 200
    first = app.connections
    assert client.request(get("/b")).status == 200
    assert app.connections == first  # reused right away
    client.close()
    time.sleep(0.6)  # past upstream_idle (300ms)
    assert Client(pod.port).request(get("/c")).status == 200
    assert app.connections == first + 1  # the idle one was retired, a new one made


def test_sampling_keeps_errors_and_chosen_fields(pod: Pod, app: ScriptedUpstream) -> None:
    for _ in range(5):
        assert Client(pod.port).request(get("/sampled-out")).status == 200
    assert Client(pod.dead).request(get("/kept")).status == 503
    wait_until(lambda: pod.access.exists() and pod.access.read_text())
    records = [json.loads(line) for line in pod.access.read_text().splitlines()]
    assert records == [
        {"listener": "dead", "method": "GET", "path": "/kept", "code": 503, "flags": "UF"}
    ]


def test_rate_limit_answers_exactly_the_burst_then_429(pod: Pod, app: ScriptedUpstream) -> None:
    client = Client(pod.limited)
    statuses = []
    for _ in range(12):
        response = client.request(get("/limited", "X-Api-Key: team-a\r\n"))
        statuses.append(response.status)
        if response.status == 429:
            assert response.header(b"retry-after") == b"20"  # one token per 20 s
    assert statuses == [200] * 5 + [429] * 7
    assert len(app.requests) == 5  # the app never saw the limited ones
    other = [client.request(get("/limited", "X-Api-Key: team-b\r\n")).status for _ in range(6)]
    assert other == [200] * 5 + [429]  # another key, its own bucket
    client.close()
    _, _, metrics = http("GET", f"{pod.pillion.status_url}/metrics")
    assert (
        b'pillion_requests_total{cluster="",code="429",flags="RL",grpc_status="",'
        b'listener="limited",method="GET",route=""} 8.0' in metrics
    )
