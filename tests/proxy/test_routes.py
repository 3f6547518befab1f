"""Routes on inbound and outbound listeners, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, http, running_pillion
from tests.proxy.harness import Client, ScriptedUpstream, get, scripted_upstream


@dataclass
class Routed:
    pillion: PillionProcess
    inbound: int
    outbound: int
    app: ScriptedUpstream
    canary: ScriptedUpstream
    other: ScriptedUpstream


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[Routed]:
    with ExitStack() as stack:
        app, canary, other = (stack.enter_context(scripted_upstream()) for _ in range(3))
        inbound, outbound = free_port(), free_port()
        proxy = f"""
proxy:
  access_log: null
  clusters:
    - {{name: canary, endpoints: ["127.0.0.1:{canary.port}"]}}
    - {{name: other, endpoints: ["127.0.0.1:{other.port}"]}}
  inbound:
    - listen: 127.0.0.1:{inbound}
      routes:
        - match: {{exact: /health}}
          direct_response: {{status: 200, body: "ok"}}
        - match: {{prefix: /, headers: [{{name: X-Canary, exact: "1"}}]}}
          cluster: canary
        - match: {{prefix: /api/}}
          prefix_rewrite: /
          set_request_headers: {{x-route: api}}
          remove_request_headers: [x-secret]
        - match: {{exact: /slow}}
          timeout: 300ms
        - match: {{prefix: /write, methods: [POST, PUT]}}
        - match: {{prefix: /split/}}
          weighted_clusters: [{{cluster: canary, weight: 1}}, {{cluster: other, weight: 3}}]
        - match: {{prefix: /dark/}}
          weighted_clusters: [{{cluster: canary, weight: 0}}, {{cluster: other, weight: 1}}]
  outbound:
    - listen: 127.0.0.1:{outbound}
      routes:
        - {{match: {{prefix: /canary/}}, cluster: canary}}
        - {{match: {{prefix: /other/}}, cluster: other}}
"""
        pillion = stack.enter_context(running_pillion(tmp_path, proxy, app.port))
        yield Routed(pillion, inbound, outbound, app, canary, other)


def test_direct_response_never_reaches_the_app(routed: Routed) -> None:
    client = Client(routed.inbound)
    first = client.request(get("/health"))
    assert (first.status, first.body) == (200, b"ok")
    assert client.request(get("/health?x")).body == b"ok"  # keep-alive: answered again
    assert routed.app.requests == []
    client.close()


def test_prefix_rewrite_and_header_edits(routed: Routed) -> None:
    client = Client(routed.inbound)
    response = client.request(
        get("/api/v1/users?page=2", "X-Secret: hunter2\r\nX-Route: forged\r\nX-Keep: 1\r\n")
    )
    assert response.status == 200
    [seen] = routed.app.requests
    assert seen.target == b"/v1/users?page=2"
    assert seen.header(b"x-secret") is None
    assert seen.header(b"x-route") == b"api"  # set: the client's copy replaced
    assert [v for k, v in seen.headers if k.lower() == b"x-route"] == [b"api"]
    assert seen.header(b"x-keep") == b"1"
    client.close()


def test_a_header_sends_the_request_to_the_canary(routed: Routed) -> None:
    client = Client(routed.inbound)
    assert client.request(get("/api/x", "X-Canary: 1\r\n")).status == 200
    assert [r.target for r in routed.canary.requests] == [b"/api/x"]  # canary: no rewrite
    assert routed.app.requests == []
    client.close()


def test_route_timeout(routed: Routed) -> None:
    routed.app.behaviour = "hang"
    client = Client(routed.inbound)
    assert client.request(get("/slow")).status == 504
    client.close()


def test_methods_and_no_route(routed: Routed) -> None:
    client = Client(routed.inbound)
    post = client.request(b"POST /write HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
    assert post.status == 200
    missing = client.request(get("/write"))  # GET matches no route
    assert (missing.status, missing.body) == (404, b"no route for this request\n")
    assert [r.method for r in routed.app.requests] == [b"POST"]
    client.close()
    _, _, metrics = http("GET", f"{routed.pillion.status_url}/metrics")
    assert b'code="404",flags="NR"' in metrics


def test_outbound_routes_pick_clusters_by_path(routed: Routed) -> None:
    client = Client(routed.outbound)
    assert client.request(get("/canary/a")).status == 200
    assert client.request(get("/other/b")).status == 200
    assert client.request(get("/nowhere")).status == 404
    assert [r.target for r in routed.canary.requests] == [b"/canary/a"]
    assert [r.target for r in routed.other.requests] == [b"/other/b"]
    client.close()


def test_weighted_split(routed: Routed) -> None:
    client = Client(routed.inbound)
    for i in range(400):
        assert client.request(get(f"/split/{i}")).status == 200
    canary, other = len(routed.canary.requests), len(routed.other.requests)
    assert canary + other == 400
    assert 50 < canary < 150  # a quarter, give or take: 100 expected
    for i in range(50):
        assert client.request(get(f"/dark/{i}")).status == 200
    assert len(routed.canary.requests) == canary  # weight 0: never chosen
    client.close()


def test_routes_apply_to_each_http2_stream(routed: Routed) -> None:
    """Streams of one HTTP/2 connection: rewrite and header edits, a header match to
    another cluster, a direct response, a method mismatch, each on its own."""
    from tests.proxy.h2raw import RawH2

    client = RawH2(routed.inbound)
    client.request(1, "/api/v1?x=1", extra=[(b"x-secret", b"hunter2"), (b"x-route", b"forged")])
    client.request(3, "/api/y", extra=[(b"x-canary", b"1")])
    client.request(5, "/health")
    client.request(7, "/write", method="GET")
    client.read_until(lambda: all(client.stream(i).over for i in (1, 3, 5, 7)))
    assert [client.stream(i).status for i in (1, 3, 5, 7)] == [200, 200, 200, 404]
    assert bytes(client.stream(5).body) == b"ok"
    [seen] = routed.app.requests
    assert seen.target == b"/v1?x=1"
    assert seen.header(b"x-secret") is None
    assert [v for k, v in seen.headers if k.lower() == b"x-route"] == [b"api"]
    assert [r.target for r in routed.canary.requests] == [b"/api/y"]
    client.close()
