"""Retries, the retry budget, pending requests, route rate limits and response
edits, end to end: real sockets, scripted upstreams that fail in known ways."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, http, metric_value, running_pillion, wait_until
from tests.proxy.harness import Client, ScriptedUpstream, get, scripted_upstream


@dataclass
class Retrying:
    pillion: PillionProcess
    port: int  # the outbound listener; the path's first segment names the route
    up: dict[str, ScriptedUpstream]
    access_log: Path

    def access_record(self, path: str) -> dict[str, object]:
        def found() -> dict[str, object] | None:
            for line in self.access_log.read_text().splitlines():
                record: dict[str, object] = json.loads(line)
                if record["path"] == path:
                    return record
            return None

        wait_until(lambda: found() is not None)
        record = found()
        assert record is not None
        return record

    def metrics(self) -> bytes:
        return http("GET", f"{self.pillion.status_url}/metrics")[2]

    def retries(self, cluster: str, reason: str) -> float:
        series = f'pillion_upstream_retries_total{{cluster="{cluster}",reason="{reason}"}}'
        return metric_value(self.metrics(), series) or 0.0


_BEHAVIOURS = {
    "flaky_bad": "fail",
    "flaky_good": "echo",
    "reset_bad": "reset-before-response",
    "reset_good": "echo",
    "refusing_good": "echo",
    "hang_bad": "hang",
    "hang_good": "echo",
    "lone": "fail",
    "down_a": "fail",
    "down_b": "fail",
    "plain": "echo",
    "slow": "slow",
}


@pytest.fixture(scope="module")
def retrying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retrying]:
    with ExitStack() as stack:
        up = {name: stack.enter_context(scripted_upstream()) for name in _BEHAVIOURS}
        for name, behaviour in _BEHAVIOURS.items():
            up[name].behaviour = behaviour
        port, refused = free_port(), free_port()
        directory = tmp_path_factory.mktemp("retries")
        access_log = directory / "access.log"

        def at(*names: str) -> str:
            return ", ".join(f"127.0.0.1:{up[name].port}" for name in names)

        never = "outliers: {consecutive_errors: 1000}"  # ejection is tested elsewhere
        proxy = f"""
proxy:
  inbound: []
  access_log: {{path: {access_log}, flush_interval: 10ms}}
  clusters:
    - {{name: flaky, endpoints: [{at("flaky_bad", "flaky_good")}], balancing: round_robin,
        retry: {{}}, {never}}}
    - {{name: resets, endpoints: [{at("reset_bad", "reset_good")}], balancing: round_robin,
        retry: {{}}, {never}}}
    - {{name: refusing, endpoints: ["127.0.0.1:{refused}", {at("refusing_good")}],
        balancing: round_robin, retry: {{}}, {never}}}
    - {{name: hanging, endpoints: [{at("hang_bad", "hang_good")}], balancing: round_robin,
        retry: {{per_try_timeout: 300ms}}, {never}}}
    - {{name: lone, endpoints: [{at("lone")}], retry: {{max_retries: 2}}, {never}}}
    - {{name: down, endpoints: [{at("down_a", "down_b")}], balancing: round_robin,
        retry: {{max_retries: 3}}, retry_budget: {{ratio: 0.2, min_per_second: 3}}, {never}}}
    - {{name: plain, endpoints: [{at("plain")}]}}
    - {{name: queue, endpoints: [{at("slow")}],
        circuit_breaker: {{max_connections: 1, max_pending_requests: 2}}}}
  outbound:
    - name: out
      listen: 127.0.0.1:{port}
      routes:
        - {{name: flaky, match: {{prefix: /flaky/}}, cluster: flaky}}
        - {{name: resets-post, match: {{prefix: /resets-post/}}, cluster: resets,
            retry: {{non_idempotent: true}}}}
        - {{name: resets, match: {{prefix: /resets/}}, cluster: resets}}
        - {{name: refusing, match: {{prefix: /refusing/}}, cluster: refusing}}
        - {{name: hanging, match: {{prefix: /hanging/}}, cluster: hanging}}
        - {{name: lone, match: {{prefix: /lone/}}, cluster: lone}}
        - {{name: down, match: {{prefix: /down/}}, cluster: down}}
        - {{name: queue, match: {{prefix: /queue/}}, cluster: queue}}
        - name: limited
          match: {{prefix: /limited/}}
          cluster: plain
          rate_limit: {{rate: 0.01, burst: 3, key: global}}
        - name: edits
          match: {{prefix: /edits/}}
          cluster: plain
          add_request_headers: {{x-added: "yes"}}
          set_response_headers: {{content-type: text/plain, x-served-by: pillion}}
          add_response_headers: {{x-extra: "1"}}
        - {{name: stripped, match: {{prefix: /stripped/}}, cluster: plain,
            remove_response_headers: [Content-Type]}}
"""
        pillion = stack.enter_context(running_pillion(directory, proxy))
        yield Retrying(pillion, port, up, access_log)


def request(port: int, method: str, path: str, body: bytes = b"", chunked: bool = False) -> bytes:
    if chunked:
        framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        return (
            f"{method} {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + framed
        )
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def test_a_failing_status_is_retried_on_another_endpoint(retrying: Retrying) -> None:
    client = Client(retrying.port)
    statuses = [client.request(get(f"/flaky/{i}")).status for i in range(6)]
    client.close()
    assert statuses == [200] * 6
    bad, good = retrying.up["flaky_bad"], retrying.up["flaky_good"]
    # round robin: every request's first try is the bad endpoint, its retry the good one
    assert len(bad.requests) == 6
    assert [r.target for r in good.requests] == [f"/flaky/{i}".encode() for i in range(6)]
    assert retrying.retries("flaky", "status") == 6.0
    # the retried 503s were read to their end: the bad endpoint's connection was reused
    assert bad.connections == 1
    record = retrying.access_record("/flaky/0")
    assert (record["code"], record["route"], record["cluster"]) == (200, "flaky", "flaky")
    assert (record["retries"], record["upstream"]) == (1, f"127.0.0.1:{good.port}")


def test_a_reset_is_retried_for_idempotent_methods_only(retrying: Retrying) -> None:
    bad, good = retrying.up["reset_bad"], retrying.up["reset_good"]
    client = Client(retrying.port)
    assert client.request(get("/resets/get")).status == 200
    assert client.request(request(retrying.port, "DELETE", "/resets/delete")).status == 200
    post = client.request(request(retrying.port, "POST", "/resets/post", b"pay once"))
    client.close()
    # the POST reached the app once and broke: it may have been applied, so it is not sent again
    assert post.status == 502
    assert [r.target for r in bad.requests] == [b"/resets/get", b"/resets/delete", b"/resets/post"]
    assert [r.target for r in good.requests] == [b"/resets/get", b"/resets/delete"]
    assert retrying.retries("resets", "reset") == 2.0


def test_a_route_may_opt_in_to_retrying_non_idempotent_requests(retrying: Retrying) -> None:
    good = retrying.up["reset_good"]
    before = len(good.requests)
    client = Client(retrying.port)
    client.request(get("/resets/align"))  # so the next first try is the bad endpoint again
    response = client.request(request(retrying.port, "POST", "/resets-post/x", b"idempotent key"))
    client.close()
    assert response.status == 200
    assert good.requests[-1].target == b"/resets-post/x"
    assert good.requests[-1].body == b"idempotent key"
    assert len(good.requests) == before + 2


def test_a_connect_failure_is_retried_for_any_method(retrying: Retrying) -> None:
    client = Client(retrying.port)
    body = b"x" * 100_000  # bigger than what is kept: nothing was sent, so it still goes again
    statuses = [
        client.request(request(retrying.port, "POST", f"/refusing/{i}", body)).status
        for i in range(4)
    ]
    client.close()
    assert statuses == [200] * 4
    good = retrying.up["refusing_good"]
    assert [r.body for r in good.requests] == [body] * 4
    # round robin: each request's first try is the refused endpoint
    assert retrying.retries("refusing", "connect_failure") == 4.0


def test_a_try_that_hangs_is_abandoned_after_the_per_try_timeout(retrying: Retrying) -> None:
    client = Client(retrying.port)
    assert client.request(get("/hanging/x")).status == 200
    client.close()
    assert [r.target for r in retrying.up["hang_bad"].requests] == [b"/hanging/x"]
    assert [r.target for r in retrying.up["hang_good"].requests] == [b"/hanging/x"]
    assert retrying.retries("hanging", "per_try_timeout") == 1.0


def test_retries_stop_at_max_retries_and_the_last_answer_is_passed_on(
    retrying: Retrying,
) -> None:
    lone = retrying.up["lone"]
    client = Client(retrying.port)
    response = client.request(get("/lone/get"))
    assert (response.status, response.body) == (503, b"fail")
    assert len(lone.requests) == 3  # the first try and max_retries: 2
    small = b"s" * 10_000
    chunked = client.request(request(retrying.port, "PUT", "/lone/chunked", small, chunked=True))
    assert chunked.status == 503
    assert [r.body for r in lone.requests[3:]] == [small] * 3  # the whole body each time
    big = b"b" * 100_000  # over max_body_size: sent once, never kept
    assert client.request(request(retrying.port, "PUT", "/lone/big", big)).status == 503
    assert client.request(request(retrying.port, "POST", "/lone/post", b"p")).status == 503
    client.close()
    assert [r.target for r in lone.requests[6:]] == [b"/lone/big", b"/lone/post"]


def test_a_cluster_that_is_all_down_gets_no_retry_storm(retrying: Retrying) -> None:
    """30 requests to a cluster whose endpoints all fail, one at a time: the ratio
    allows no retry with one request in flight, so only the floor of 3 retries per
    second is spent, not the 3 retries per request the policy would allow."""
    down = [retrying.up["down_a"], retrying.up["down_b"]]
    client = Client(retrying.port)
    started = time.monotonic()
    statuses = [client.request(get(f"/down/{i}")).status for i in range(30)]
    elapsed = time.monotonic() - started
    client.close()
    assert statuses == [503] * 30
    attempts = sum(len(u.requests) for u in down)
    retries = retrying.retries("down", "status")
    assert attempts == 30 + retries  # every try the endpoints saw is a counted retry
    assert retries <= 3 * (math.floor(elapsed) + 1)  # the floor, per one-second window
    assert retries < 30 * 3
    overflow = metric_value(
        retrying.metrics(), 'pillion_upstream_retry_overflow_total{cluster="down"}'
    )
    assert overflow is not None
    assert overflow >= 30 - retries  # every request wanted one; the budget said no


def test_requests_wait_for_a_connection_up_to_max_pending(retrying: Retrying) -> None:
    slow = retrying.up["slow"]
    first = Client(retrying.port)
    first.send(get("/queue/1"))
    wait_until(lambda: len(slow.requests) == 1)
    waiting = [Client(retrying.port) for _ in range(2)]
    for index, client in enumerate(waiting, start=2):
        client.send(get(f"/queue/{index}"))
    pending = 'pillion_cluster_in_flight{cluster="queue",kind="pending"}'
    wait_until(lambda: metric_value(retrying.metrics(), pending) == 2.0)
    overflow = Client(retrying.port).request(get("/queue/4"))
    assert (overflow.status, overflow.body) == (503, b"upstream connection limit reached\n")
    for client in [first, *waiting]:
        assert client.read(1)[0].status == 200
        client.close()
    # one connection served the three, one after the other
    assert slow.connections == 1
    assert [r.target for r in slow.requests] == [b"/queue/1", b"/queue/2", b"/queue/3"]
    metrics = retrying.metrics()
    series = (
        'pillion_requests_total{cluster="queue",code="503",flags="UO",grpc_status="",listener="out",'
        'method="GET",route="queue"}'
    )
    assert metric_value(metrics, series) == 1.0


def test_a_route_rate_limit_counts_by_route(retrying: Retrying) -> None:
    client = Client(retrying.port)
    responses = [client.request(get(f"/limited/{i}")) for i in range(5)]
    client.close()
    assert [r.status for r in responses] == [200, 200, 200, 429, 429]
    assert responses[-1].header(b"retry-after") == b"100"  # one token per 100 s
    assert [
        r.target for r in retrying.up["plain"].requests if r.target.startswith(b"/limited")
    ] == [
        b"/limited/0",
        b"/limited/1",
        b"/limited/2",
    ]
    series = (
        'pillion_requests_total{{cluster="plain",code="{}",flags="{}",grpc_status="",listener="out",'
        'method="GET",route="limited"}}'
    )
    metrics = retrying.metrics()
    assert metric_value(metrics, series.format(429, "RL")) == 2.0
    assert metric_value(metrics, series.format(200, "-")) == 3.0


def test_routes_edit_request_and_response_headers(retrying: Retrying) -> None:
    client = Client(retrying.port)
    response = client.request(get("/edits/x", "X-Added: from-client\r\n"))
    client.close()
    assert response.status == 200
    assert response.header(b"content-type") == b"text/plain"  # set: replaced the app's
    assert [v for k, v in response.headers if k.lower() == b"content-type"] == [b"text/plain"]
    assert response.header(b"x-served-by") == b"pillion"
    assert response.header(b"x-extra") == b"1"
    seen = retrying.up["plain"].requests[-1]
    # added: after the client's own copy, which is kept
    assert [v for k, v in seen.headers if k.lower() == b"x-added"] == [b"from-client", b"yes"]
    client = Client(retrying.port)
    stripped = client.request(get("/stripped/x"))
    client.close()
    assert stripped.status == 200
    assert stripped.header(b"content-type") is None
    assert stripped.json()["target"] == "/stripped/x"


def test_promtool_accepts_the_traffic_metrics(retrying: Retrying) -> None:
    """Every family this module's traffic created (clusters, retries, circuit
    gauges, route labels) passes ``promtool check metrics``."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package; `make test` installs it"
    metrics = retrying.metrics()
    for family in (
        b"pillion_upstream_retries_total",
        b"pillion_cluster_in_flight",
        b"pillion_cluster_circuit_open",
        b"pillion_cluster_endpoints",
    ):
        assert family in metrics
    check = subprocess.run(
        [promtool, "check", "metrics"], input=metrics, capture_output=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert (check.returncode, check.stdout + check.stderr) == (0, b"")
