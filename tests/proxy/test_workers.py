"""``proxy.workers``: several processes on one port, restarted when they die."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, http, running_pillion, wait_until
from tests.proxy.harness import Client, get, scripted_upstream


def _workers(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"pillion.proxy.worker" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[tuple[PillionProcess, int, Path]]:
    port, access = free_port(), tmp_path / "access.log"
    proxy = f"""
lifecycle: {{drain_timeout: 5s}}
proxy:
  workers: 2
  inbound:
    - listen: 127.0.0.1:{port}
  access_log: {{path: {access}, flush_interval: 50ms}}
"""
    with (
        scripted_upstream() as upstream,
        running_pillion(tmp_path, proxy, upstream.port) as process,
    ):
        yield process, port, access


def test_workers_share_the_port_and_their_metrics_add_up(
    pod: tuple[PillionProcess, int, Path],
) -> None:
    process, port, access = pod
    workers = _workers(process.proc.pid)
    assert len(workers) == 2
    for i in range(40):  # new connections: the kernel spreads them over both workers
        assert Client(port).request(get(f"/w{i}")).status == 200
    series = (
        b'pillion_requests_total{cluster="",code="200",flags="-",grpc_status="",'
        b'listener="inbound",method="GET",route=""} 40.0'
    )
    # the workers' counts reach the main process's page a moment later (on a busy
    # machine, a noticeable one): the page is read until it has them all
    pages: list[bytes] = []

    def counted() -> bool:
        pages.append(http("GET", f"{process.status_url}/metrics")[2])
        return series in pages[-1]

    wait_until(counted)
    metrics = pages[-1]
    promtool = shutil.which("promtool")
    assert promtool
    check = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    assert (check.returncode, check.stdout + check.stderr) == (0, b"")
    wait_until(lambda: len(access.read_text().splitlines()) == 40)
    lines = [json.loads(line) for line in access.read_text().splitlines()]
    assert sorted(r["path"] for r in lines) == sorted(f"/w{i}" for i in range(40))
    records = process.records()
    assert {r.get("worker") for r in records if r["message"] == "listening"} >= {0, 1}


def test_a_dead_worker_is_restarted_and_the_port_keeps_serving(
    pod: tuple[PillionProcess, int, Path],
) -> None:
    process, port, _ = pod
    first, second = _workers(process.proc.pid)
    os.kill(first, signal.SIGKILL)
    # Once it is gone (the kernel resets only what was queued on its dying socket;
    # net.ipv4.tcp_migrate_req=1 would hand those to the survivor), the other serves.
    wait_until(lambda: not Path(f"/proc/{first}").exists())
    for i in range(20):  # the surviving worker answers meanwhile
        assert Client(port).request(get(f"/during-{i}")).status == 200
    wait_until(lambda: len(_workers(process.proc.pid)) == 2)
    assert first not in _workers(process.proc.pid)
    assert second in _workers(process.proc.pid)
    wait_until(lambda: http("GET", f"{process.status_url}/healthz/ready")[0] == 200)
    _, _, metrics = http("GET", f"{process.status_url}/metrics")
    assert b"pillion_proxy_worker_restarts_total 1.0" in metrics
    assert process.wait_for_log("worker restarted")


def test_sigterm_drains_every_worker_and_leaves_none(
    pod: tuple[PillionProcess, int, Path],
) -> None:
    process, port, _ = pod
    workers = _workers(process.proc.pid)
    process.signal(signal.SIGTERM)
    assert process.wait_exit() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_a_worker_that_cannot_listen_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:  # bound without SO_REUSEPORT: workers cannot share it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proxy = (
            f"proxy:\n  workers: 2\n  inbound:\n    - listen: 127.0.0.1:{taken.getsockname()[1]}\n"
        )
        with running_pillion(tmp_path, proxy, ready=False) as process:
            assert process.wait_exit() == 1
    failure = [r for r in process.records() if r["message"] == "cannot start"]
    assert any("address already in use" in str(r.get("error")) for r in failure)
    assert any("did not start" in str(r.get("error")) for r in failure)
    assert _workers(process.proc.pid) == []
