"""The status server: probes and /metrics, checked with the real promtool."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests.helpers import PillionProcess, http, raw_request, running_pillion


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PillionProcess]:
    body = "lifecycle:\n  drain_timeout: 10s\n"
    with running_pillion(tmp_path_factory.mktemp("status"), body) as process:
        yield process


@pytest.mark.parametrize("probe", ["started", "live", "ready"])
def test_probes_pass_with_component_detail(pod: PillionProcess, probe: str) -> None:
    status, headers, body = http("GET", f"{pod.status_url}/healthz/{probe}")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    health = json.loads(body)
    assert health[probe] is True
    assert health["components"]["admin"] == {"state": "running", "started": True, "ready": True}
    assert set(health["components"]) == {"status", "admin"}


def test_probes_answer_head(pod: PillionProcess) -> None:
    status, _, body = http("HEAD", f"{pod.status_url}/healthz/live")
    assert (status, body) == (200, b"")


def test_metrics_text_format(pod: PillionProcess) -> None:
    status, headers, body = http("GET", f"{pod.status_url}/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    for needle in (
        "# TYPE pillion_build_info gauge",
        'pillion_component_state{component="admin",state="running"} 1.0',
        'pillion_component_state{component="admin",state="starting"} 0.0',
        'pillion_config_reloads_total{result="error"} 0.0',
        "pillion_process_start_time_seconds ",
        "pillion_start_time_seconds ",
    ):
        assert needle in text
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert all(name.startswith("pillion_") for name in names)


def test_metrics_openmetrics_when_asked(pod: PillionProcess) -> None:
    status, headers, body = http(
        "GET",
        f"{pod.status_url}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"},
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"# TYPE pillion_config_reloads counter" in body
    assert b'pillion_config_reloads_total{result="error"} 0.0' in body


def test_promtool_finds_nothing_to_complain_about(pod: PillionProcess) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package; `make test` installs it"
    curl = subprocess.run(
        ["curl", "-sf", f"{pod.status_url}/metrics"], capture_output=True, check=True, timeout=30
    )
    check = subprocess.run(
        [promtool, "check", "metrics"], input=curl.stdout, capture_output=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == b""


def test_unknown_path_404_and_wrong_method_405(pod: PillionProcess) -> None:
    assert http("GET", f"{pod.status_url}/healthz")[0] == 404
    assert http("GET", f"{pod.status_url}/config")[0] == 404  # admin only, never on the pod IP
    assert http("POST", f"{pod.status_url}/metrics")[0] == 405
    assert http("POST", f"{pod.status_url}/healthz/ready")[0] == 405


def test_oversized_request_is_413(pod: PillionProcess) -> None:
    status, _, _ = http("POST", f"{pod.status_url}/metrics", body=b"x" * 10_000)
    assert status == 413


def test_pipelined_requests_are_answered_in_order_then_a_bad_one_closes(
    pod: PillionProcess,
) -> None:
    response = raw_request(
        pod.status_port,
        b"GET /healthz/live HTTP/1.1\r\nHost: p\r\n\r\n"
        b"HEAD /healthz/ready HTTP/1.1\r\nHost: p\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: p\r\n\r\n"
        b"GET /healthz/live HTTP/1.1\r\nHost: p\r\nHost: q\r\n\r\n"  # two Hosts: 400
        b"GET /healthz/live HTTP/1.1\r\nHost: p\r\n\r\n",  # never read
    )
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", response)
    assert statuses == [b"200", b"200", b"404", b"400"]
    assert response.count(b'"live": true') == 1  # the HEAD answer has no body
    assert response.endswith(b"\n")


def test_a_head_without_its_end_is_not_answered_and_does_not_block_others(
    pod: PillionProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", pod.status_port), timeout=5) as slow:
        slow.sendall(b"GET /healthz/live HTTP/1.1\r\nHost: p\r\n")  # no blank line yet
        assert http("GET", f"{pod.status_url}/healthz/live")[0] == 200
        slow.sendall(b"\r\n")
        assert slow.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
