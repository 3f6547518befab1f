"""Drain under load, and thousands of idle connections, against a real ``pillion run``."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    metric_value,
    refused,
    running_pillion,
    wait_until,
)
from tests.proxy.h2raw import RawH2
from tests.proxy.harness import Client, ScriptedUpstream, get, scripted_upstream


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[tuple[PillionProcess, int, ScriptedUpstream]]:
    port, capped = free_port(), free_port()
    proxy = f"""
lifecycle: {{drain_timeout: 10s}}
proxy:
  inbound:
    - name: main
      listen: 127.0.0.1:{port}
    - name: capped
      listen: 127.0.0.1:{capped}
      max_connections: 3
  access_log: null
"""
    with (
        scripted_upstream() as upstream,
        running_pillion(tmp_path, proxy, upstream.port) as process,
    ):
        process.capped_port = capped  # type: ignore[attr-defined]
        yield process, port, upstream


@dataclass
class LoadResult:
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    not_accepted: int = 0


def _load(port: int, stop: threading.Event, result: LoadResult, lock: threading.Lock) -> None:
    """A well-behaved keep-alive client: honours Connection: close, stops when refused."""
    while not stop.is_set():
        try:
            client = Client(port, timeout=10)
        except ConnectionRefusedError:
            return  # the listener is closed: nothing more is accepted
        answered = 0
        try:
            while True:
                response = client.request(get("/load"))
                if response.status != 200:
                    with lock:
                        result.failed.append(f"status {response.status}")
                    return
                answered += 1
                with lock:
                    result.ok += 1
                if response.header(b"connection") == b"close" or stop.is_set():
                    break
        except (ConnectionResetError, BrokenPipeError, ValueError, OSError) as exc:
            with lock:
                if answered == 0 and isinstance(exc, (ConnectionResetError, ValueError)):
                    result.not_accepted += 1  # reset in the accept backlog as it closed
                else:
                    result.failed.append(repr(exc))
            return
        finally:
            client.close()


def test_load_through_sigterm_loses_no_accepted_request(
    pod: tuple[PillionProcess, int, ScriptedUpstream],
) -> None:
    process, port, _ = pod
    result, lock, stop = LoadResult(), threading.Lock(), threading.Event()
    workers = [threading.Thread(target=_load, args=(port, stop, result, lock)) for _ in range(8)]
    for worker in workers:
        worker.start()
    wait_until(lambda: result.ok > 50)  # under load
    before = result.ok
    process.signal(signal.SIGTERM)
    # readiness fails once the signal is handled (the loop may serve a probe that was
    # already in flight first), while the load goes on; on a busy machine the drain may
    # be over, and the status port closed, before a probe gets in: not ready either
    wait_until(lambda: not _ready(process))
    for worker in workers:
        worker.join(timeout=30)
    stop.set()
    assert process.wait_exit() == 0
    assert result.failed == []
    assert before > 50
    assert result.ok >= before


def _ready(process: PillionProcess) -> bool:
    try:
        return http("GET", f"{process.status_url}/healthz/ready")[0] == 200
    except OSError:  # refused: the process has stopped listening
        return False


def test_draining_keep_alive_responses_say_connection_close(
    pod: tuple[PillionProcess, int, ScriptedUpstream],
) -> None:
    process, port, upstream = pod
    upstream.behaviour = "held"
    client = Client(port)
    client.send(get("/in-flight"))
    wait_until(lambda: upstream.requests)  # in flight: at the app
    process.signal(signal.SIGTERM)
    wait_until(lambda: refused(port))  # draining
    upstream.release.set()  # only now does the app answer
    [response] = client.read(1)
    assert (response.status, response.body) == (200, b"held")
    assert response.header(b"connection") == b"close"
    assert client.is_closed_by_peer()
    assert process.wait_exit() == 0


def test_draining_http2_goes_away_and_finishes_the_streams_in_flight(
    pod: tuple[PillionProcess, int, ScriptedUpstream],
) -> None:
    process, port, upstream = pod
    upstream.behaviour = "held"
    client = RawH2(port)
    client.request(1, "/in-flight")
    wait_until(lambda: upstream.requests)  # at the app
    process.signal(signal.SIGTERM)
    client.read_until(lambda: client.goaway is not None)
    assert client.goaway is not None
    assert (client.goaway.last_stream_id, client.goaway.error_code) == (1, 0)
    client.request(3, "/too-late")  # after the GOAWAY: not taken
    client.read_until(lambda: client.stream(3).over)
    upstream.release.set()
    client.read_until(lambda: client.stream(1).over)
    stream = client.stream(1)
    assert (stream.status, bytes(stream.body)) == (200, b"held")
    assert client.stream(3).reset == 0x7  # REFUSED_STREAM: safe to send elsewhere
    assert [r.target for r in upstream.requests] == [b"/in-flight"]
    client.wait_closed()
    assert process.wait_exit() == 0


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _active(process: PillionProcess) -> float | None:
    """Pillion's count of open connections on the listener "main"."""
    metrics = http("GET", f"{process.status_url}/metrics")[2]
    return metric_value(metrics, 'pillion_connections_active{listener="main"}')


def test_5000_idle_keep_alive_connections_bounded_memory_no_fd_leak(
    pod: tuple[PillionProcess, int, ScriptedUpstream],
) -> None:
    process, port, _ = pod
    pid = process.proc.pid
    warm = Client(port)
    assert warm.request(get()).status == 200
    warm.sock.shutdown(socket.SHUT_WR)
    assert warm.is_closed_by_peer()  # Pillion has let the warm-up connection go
    warm.close()
    fds_before, rss_before = _fds(pid), _rss_kib(pid)
    sockets = []
    try:
        for _ in range(5000):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sockets.append(sock)
        for sock in sockets[::500]:  # they are all served, not just accepted
            sock.sendall(get())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        wait_until(lambda: _active(process) == 5000)  # every one accepted
        assert _fds(pid) >= fds_before + 5000
        grown_mib = (_rss_kib(pid) - rss_before) / 1024
        assert grown_mib < 64, f"{grown_mib:.1f} MiB for 5000 idle connections"
    finally:
        for sock in sockets:
            sock.close()
    wait_until(lambda: _active(process) == 0)  # every connection closed
    wait_until(lambda: _fds(pid) <= fds_before + 2)  # and its socket released


def test_max_connections_closes_the_excess(
    pod: tuple[PillionProcess, int, ScriptedUpstream],
) -> None:
    process, _, _ = pod
    capped = process.capped_port  # type: ignore[attr-defined]
    held = [Client(capped) for _ in range(3)]
    for client in held:
        assert client.request(get()).status == 200
    extra = Client(capped)
    assert extra.is_closed_by_peer()
    _, _, metrics = http("GET", f"{process.status_url}/metrics")
    assert b'pillion_connections_rejected_total{listener="capped"} 1.0' in metrics
    for client in held:
        client.close()


def _churn(port: int, stop: threading.Event, result: LoadResult, lock: threading.Lock) -> None:
    """One request per connection, as fast as possible: the accept queue is never empty."""
    while not stop.is_set():
        try:
            client = Client(port, timeout=10)
            response = client.request(get("/churn", "Connection: close\r\n"))
            client.close()
        except OSError as exc:
            with lock:
                result.failed.append(repr(exc))
            continue
        with lock:
            if response.status == 200:
                result.ok += 1
            else:
                result.failed.append(f"status {response.status}")


def test_reloading_the_proxy_under_load_refuses_and_resets_nothing(
    pod: tuple[PillionProcess, int, ScriptedUpstream],
) -> None:
    process, port, _ = pod
    result, lock, stop = LoadResult(), threading.Lock(), threading.Event()
    workers = [threading.Thread(target=_churn, args=(port, stop, result, lock)) for _ in range(8)]
    for worker in workers:
        worker.start()
    wait_until(lambda: result.ok > 0)  # the load is on
    text = process.config.read_text()
    for version in range(5):  # each reload replaces the proxy: a new listener takes over
        changed = text.replace("max_connections: 3", f"max_connections: {4 + version}")
        process.config.write_text(changed)
        process.signal(signal.SIGHUP)
        process.wait_for_log("config reloaded", count=version + 1)
        served = result.ok
        wait_until(lambda: result.ok > served + 10)  # noqa: B023 (the new listener serves)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    assert result.failed == []
    assert result.ok > 200
    _, _, body = http("GET", f"http://127.0.0.1:{process.admin_port}/config")
    assert json.loads(body)["proxy"]["inbound"][1]["max_connections"] == 8
