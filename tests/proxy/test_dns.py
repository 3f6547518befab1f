"""Endpoint names re-resolved with a TTL, through the real resolver (glibc).

Pillion runs in its own mount namespace where ``/etc/hosts`` is a file the test
edits and ``/etc/nsswitch.conf`` says to look only there: the same lookups as
in a pod, with answers the test controls (no DNS server is reachable here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, http, metric_value, running_pillion, wait_until
from tests.proxy.harness import Client, ScriptedUpstream, get

_NAME = "backend.pillion.test"


@dataclass
class Resolving:
    pillion: PillionProcess
    port: int
    hosts: Path
    first: ScriptedUpstream  # 127.0.0.1
    second: ScriptedUpstream  # 127.0.0.2, same port

    def point(self, text: str) -> None:
        """Rewrite the hosts file in place (the bind mount follows the inode)."""
        with self.hosts.open("r+") as file:
            file.truncate(0)
            file.write(text)


def _in_own_mounts(hosts: Path, nsswitch: Path) -> list[str]:
    script = (
        'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
            str(hosts), str(nsswitch)]  # fmt: skip


@pytest.fixture
def resolving(tmp_path: Path) -> Iterator[Resolving]:
    if os.geteuid() != 0:
        pytest.fail("mount namespaces need root (CI runs as root)")
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 {_NAME}\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files\n")
    with ExitStack() as stack:
        first = ScriptedUpstream().start()
        stack.callback(first.stop)
        second = ScriptedUpstream().start("127.0.0.2", first.port)
        stack.callback(second.stop)
        port = free_port()
        proxy = f"""
proxy:
  inbound: []
  access_log: null
  outbound:
    - {{name: out, listen: 127.0.0.1:{port}}}
  clusters:
    - {{name: named, endpoints: ["{_NAME}:{first.port}"], dns_refresh: 200ms}}
    - {{name: ghost, endpoints: ["nowhere.pillion.test:{first.port}"], dns_refresh: 200ms}}
"""
        pillion = stack.enter_context(
            running_pillion(tmp_path, proxy, wrapper=_in_own_mounts(hosts, nsswitch))
        )
        yield Resolving(pillion, port, hosts, first, second)


def _status(port: int, host: str = "named") -> int:
    client = Client(port)
    try:
        return client.request(get("/").replace(b"Host: test", f"Host: {host}".encode())).status
    finally:
        client.close()


def test_a_name_that_stops_resolving_keeps_its_last_addresses(resolving: Resolving) -> None:
    assert _status(resolving.port) == 200
    assert len(resolving.first.requests) == 1
    resolving.point("# the name is gone\n")
    wait_until(lambda: bool(_warnings(resolving.pillion)))
    [warning] = _warnings(resolving.pillion)
    assert warning["addresses"] == [f"127.0.0.1:{resolving.first.port}"]
    assert [_status(resolving.port) for _ in range(3)] == [200] * 3
    assert len(resolving.first.requests) == 4
    metrics = http("GET", f"{resolving.pillion.status_url}/metrics")[2]
    failures = metric_value(metrics, 'pillion_cluster_dns_failures_total{cluster="named"}')
    assert failures is not None
    assert failures >= 1
    # logged once per outage, not at every refresh
    wait_until(lambda: (metric_value(
        http("GET", f"{resolving.pillion.status_url}/metrics")[2],
        'pillion_cluster_dns_failures_total{cluster="named"}',
    ) or 0) >= failures + 2)  # fmt: skip
    assert len(_warnings(resolving.pillion)) == 1
    resolving.point(f"127.0.0.1 {_NAME}\n")
    back = resolving.pillion.wait_for_log("endpoint name resolves again")
    assert back["host"] == _NAME


def _warnings(pillion: PillionProcess) -> list[dict[str, object]]:
    """The warnings about ``_NAME`` not resolving (the ghost cluster has its own)."""
    message = "endpoint name does not resolve; keeping its last addresses"
    return [r for r in pillion.records() if r.get("message") == message and r["host"] == _NAME]


def test_a_new_address_replaces_the_old_one(resolving: Resolving) -> None:
    assert _status(resolving.port) == 200
    resolving.point(f"127.0.0.2 {_NAME}\n")
    changed = resolving.pillion.wait_for_log("cluster endpoints changed")
    assert changed["endpoints"] == [f"127.0.0.2:{resolving.first.port}"]
    assert [_status(resolving.port) for _ in range(3)] == [200] * 3
    assert len(resolving.first.requests) == 1
    assert len(resolving.second.requests) == 3


def test_every_address_of_a_name_is_an_endpoint(resolving: Resolving) -> None:
    resolving.point(f"127.0.0.1 {_NAME}\n127.0.0.2 {_NAME}\n")
    resolving.pillion.wait_for_log("cluster endpoints changed")
    assert [_status(resolving.port) for _ in range(10)] == [200] * 10
    assert resolving.first.requests
    assert resolving.second.requests


def test_a_name_that_never_resolved_answers_503(resolving: Resolving) -> None:
    client = Client(resolving.port)
    response = client.request(get().replace(b"Host: test", b"Host: ghost"))
    client.close()
    assert (response.status, response.body) == (503, b"no endpoint address yet\n")
    metrics = http("GET", f"{resolving.pillion.status_url}/metrics")[2]
    series = (
        'pillion_requests_total{cluster="ghost",code="503",flags="UF",grpc_status="",listener="out",'
        'method="GET",route=""}'
    )
    assert metric_value(metrics, series) == 1.0
