"""Outbound listeners and clusters: the app calls Pillion, Pillion picks an endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    metric_value,
    running_pillion,
    wait_until,
)
from tests.proxy.harness import Client, ScriptedUpstream, get, scripted_upstream


@dataclass
class Mesh:
    pillion: PillionProcess
    by_host: int  # outbound listener choosing the cluster by host
    fixed: int  # outbound listener bound to cluster "b"
    a: ScriptedUpstream
    b: ScriptedUpstream
    three: list[ScriptedUpstream]
    slow: ScriptedUpstream
    back: list[ScriptedUpstream]


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    with ExitStack() as stack:
        a, b = (stack.enter_context(scripted_upstream()) for _ in range(2))
        three = [stack.enter_context(scripted_upstream()) for _ in range(3)]
        back = [stack.enter_context(scripted_upstream()) for _ in range(3)]
        slow = stack.enter_context(scripted_upstream())
        slow.behaviour = "hang"
        by_host, fixed, refused, refused2 = (free_port() for _ in range(4))
        endpoints = ", ".join(f"127.0.0.1:{u.port}" for u in three)
        proxy = f"""
proxy:
  inbound: []
  access_log: null
  outbound:
    - {{name: out, listen: 127.0.0.1:{by_host}}}
    - {{name: to-b, listen: 127.0.0.1:{fixed}, cluster: b}}
  clusters:
    - {{name: a, endpoints: [127.0.0.1:{a.port}]}}
    - {{name: b, endpoints: [localhost:{b.port}]}}
    - name: three
      endpoints: [{endpoints}]
      balancing: round_robin
      outliers: {{consecutive_errors: 3, base_ejection: 1m}}
    - name: back
      endpoints: [{", ".join(f"127.0.0.1:{u.port}" for u in back)}]
      balancing: round_robin
      outliers: {{consecutive_errors: 2, base_ejection: 1s}}
    - name: down
      endpoints: [127.0.0.1:{refused}, 127.0.0.1:{refused2}]
      outliers: {{consecutive_errors: 1}}
    - name: tiny
      endpoints: [127.0.0.1:{slow.port}]
      circuit_breaker: {{max_active_requests: 2}}
      timeouts: {{request: 2s}}
    - name: single
      endpoints: [127.0.0.1:{slow.port}]
      circuit_breaker: {{max_connections: 1, max_pending_requests: 0}}
      timeouts: {{request: 2s}}
"""
        pillion = stack.enter_context(running_pillion(tmp_path, proxy))
        yield Mesh(pillion, by_host, fixed, a, b, three, slow, back)


def test_the_host_names_the_cluster(mesh: Mesh) -> None:
    client = Client(mesh.by_host)
    assert client.request(get("/to-a").replace(b"Host: test", b"Host: a")).status == 200
    assert client.request(get("/to-b").replace(b"Host: test", b"Host: B:8080")).status == 200
    # as an http_proxy: the absolute URL names the cluster
    assert client.request(b"GET http://a/proxied?q=1 HTTP/1.1\r\nHost: a\r\n\r\n").status == 200
    unknown = client.request(get("/nowhere").replace(b"Host: test", b"Host: c"))
    assert (unknown.status, unknown.body) == (404, b"no route for this request\n")
    assert [r.target for r in mesh.a.requests] == [b"/to-a", b"/proxied?q=1"]
    assert [r.target for r in mesh.b.requests] == [b"/to-b"]
    assert mesh.b.requests[0].header(b"host") == b"B:8080"
    client.close()
    _, _, metrics = http("GET", f"{mesh.pillion.status_url}/metrics")
    assert (
        b'pillion_requests_total{cluster="",code="404",flags="NR",grpc_status="",'
        b'listener="out",method="GET",route=""} 1.0' in (metrics)
    )


def test_a_fixed_listener_ignores_the_host(mesh: Mesh) -> None:
    client = Client(mesh.fixed)
    assert client.request(get("/anything")).status == 200
    assert [r.target for r in mesh.b.requests] == [b"/anything"]
    client.close()


def test_round_robin_spreads_across_endpoints(mesh: Mesh) -> None:
    client = Client(mesh.by_host)
    for i in range(30):
        assert client.request(get(f"/{i}").replace(b"Host: test", b"Host: three")).status == 200
    assert [len(u.requests) for u in mesh.three] == [10, 10, 10]
    client.close()


def test_a_failing_endpoint_is_ejected_and_traffic_moves(mesh: Mesh) -> None:
    bad = mesh.three[1]
    bad.behaviour = "fail"
    client = Client(mesh.by_host)
    statuses = [
        client.request(get(f"/{i}").replace(b"Host: test", b"Host: three")).status
        for i in range(30)
    ]
    assert statuses.count(503) == 3  # three in a row at the bad one, then it is out
    assert statuses[-20:] == [200] * 20
    assert len(bad.requests) == 3
    client.close()
    _, _, metrics = http("GET", f"{mesh.pillion.status_url}/metrics")
    assert b'pillion_outlier_ejections_total{cluster="three"} 1.0' in metrics
    assert mesh.pillion.wait_for_log("endpoint ejected")["cluster"] == "three"


def test_an_ejected_endpoint_returns_after_its_ejection_time(mesh: Mesh) -> None:
    bad = mesh.back[0]
    bad.behaviour = "fail"
    client = Client(mesh.by_host)

    def send(count: int) -> list[int]:
        host = b"Host: back"
        return [client.request(get().replace(b"Host: test", host)).status for _ in range(count)]

    statuses = send(6)
    assert statuses.count(503) == 2  # two in a row at the bad one: ejected
    ejected_at = len(bad.requests)
    assert send(6) == [200] * 6
    assert len(bad.requests) == ejected_at  # out of the rotation
    bad.behaviour = "echo"  # it recovers
    wait_until(lambda: send(1) == [200] and len(bad.requests) > ejected_at, timeout=10)
    client.close()


def test_a_cluster_that_is_down_fails_fast(mesh: Mesh) -> None:
    client = Client(mesh.by_host)
    for _ in range(5):
        response = client.request(get().replace(b"Host: test", b"Host: down"))
        assert response.status == 503
    client.close()
    _, _, metrics = http("GET", f"{mesh.pillion.status_url}/metrics")
    # never more than half ejected: one endpoint stays in to be tried
    assert b'pillion_outlier_ejections_total{cluster="down"} 1.0' in metrics
    assert b'pillion_cluster_connect_errors_total{cluster="down"} 5.0' in metrics


def _send(mesh: Mesh, host: str) -> Client:
    client = Client(mesh.by_host)
    client.send(get("/").replace(b"Host: test", f"Host: {host}".encode()))
    return client


def test_max_active_requests_sheds_the_excess_at_once(mesh: Mesh) -> None:
    waiting = [_send(mesh, "tiny") for _ in range(2)]
    wait_until(lambda: len(mesh.slow.requests) == 2)
    overflow = Client(mesh.by_host).request(get().replace(b"Host: test", b"Host: tiny"))
    assert overflow.status == 503
    assert overflow.body == b"upstream overflow: too many requests in flight\n"
    for client in waiting:  # the two in flight time out normally
        [response] = client.read(1)
        assert response.status == 504
        client.close()
    _, _, metrics = http("GET", f"{mesh.pillion.status_url}/metrics")
    assert (
        b'pillion_requests_total{cluster="tiny",code="503",flags="UO",grpc_status="",'
        b'listener="out",method="GET",route=""} 1.0' in (metrics)
    )
    # shedding load is not the endpoint failing: nothing was ejected
    assert metric_value(metrics, 'pillion_outlier_ejections_total{cluster="tiny"}') == 0.0


def test_max_connections_sheds_the_excess(mesh: Mesh) -> None:
    first = _send(mesh, "single")
    wait_until(lambda: len(mesh.slow.requests) == 1)
    second = Client(mesh.by_host).request(get().replace(b"Host: test", b"Host: single"))
    assert (second.status, second.body) == (503, b"upstream connection limit reached\n")
    first.close()
