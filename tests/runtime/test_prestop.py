"""``GET /prestop`` (the app's preStop hook) and ``lifecycle.exit_file``, on a real
``pillion run``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    refused,
    running_pillion,
    serve_http,
    wait_until,
)

TOKEN = "prestop-t0ken-never-logged"


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release = threading.Event()  # /slow answers once it is set

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            self.release.wait(timeout=30)
        body = b"app\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def app() -> Iterator[int]:
    _Slow.release.clear()
    with serve_http(_Slow) as port:
        yield port
        _Slow.release.set()  # a /slow still waiting ends


@contextlib.contextmanager
def _sidecar(
    tmp_path: Path, app: int, env: dict[str, str], workers: int = 1
) -> Iterator[tuple[PillionProcess, int, int]]:
    inbound, outbound = free_port(), free_port()
    proxy = f"""proxy:
  workers: {workers}
  access_log: null
  inbound: [{{listen: 127.0.0.1:{inbound}}}]
  outbound: [{{listen: 127.0.0.1:{outbound}, cluster: app}}]
  clusters: [{{name: app, endpoints: ["127.0.0.1:{app}"]}}]
"""
    with running_pillion(tmp_path, proxy, app, env=env) as process:
        yield process, inbound, outbound


def _prestop(process: PillionProcess, authorization: str | None) -> int:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return http("GET", f"{process.status_url}/prestop", headers=headers, timeout=30)[0]


def test_off_without_a_token(tmp_path: Path, app: int) -> None:
    with _sidecar(tmp_path, app, {"PILLION_PRESTOP_TOKEN": ""}) as (process, inbound, _):
        assert _prestop(process, f"Bearer {TOKEN}") == 404
        assert http("GET", f"http://127.0.0.1:{inbound}/")[0] == 200  # nothing drained


@pytest.mark.parametrize("workers", [1, 2])
def test_the_hook_drains_inbound_only_and_answers_when_requests_are_done(
    tmp_path: Path, app: int, workers: int
) -> None:
    env = {"PILLION_PRESTOP_TOKEN": TOKEN}
    with _sidecar(tmp_path, app, env, workers) as (process, inbound, outbound):
        # a wrong or missing token changes nothing
        assert _prestop(process, None) == 401
        assert _prestop(process, "Bearer wrong") == 401
        assert _prestop(process, TOKEN) == 401  # not a bearer
        assert http("GET", f"{process.status_url}/healthz/ready")[0] == 200
        assert http("GET", f"{process.admin_url}/config")[2].count(b"***") >= 1

        finished: list[str] = []

        def slow() -> None:
            status = http("GET", f"http://127.0.0.1:{inbound}/slow", timeout=30)[0]
            finished.append(f"slow {status}")

        def answer_when_draining() -> None:
            wait_until(lambda: http("GET", f"{process.status_url}/healthz/ready")[0] == 503)
            finished.append("app answers")
            _Slow.release.set()

        in_flight = threading.Thread(target=slow)
        in_flight.start()
        wait_until(lambda: _in_flight(process) == 1)
        # the app answers once the hook has begun the drain: the hook has to wait for it
        threading.Thread(target=answer_when_draining, daemon=True).start()
        assert _prestop(process, f"Bearer {TOKEN}") == 200
        finished.append("prestop 200")
        in_flight.join()
        # (the two answers arrive together, in threads: their order is not Pillion's)
        assert finished[0] == "app answers"
        assert sorted(finished[1:]) == ["prestop 200", "slow 200"]

        assert refused(inbound)  # no new inbound connection
        assert http("GET", f"{process.status_url}/healthz/ready")[0] == 503
        assert http("GET", f"http://127.0.0.1:{outbound}/")[0] == 200  # the app's calls go on
        assert _prestop(process, f"Bearer {TOKEN}") == 200  # again: already drained
        process.stop()
        assert process.proc.returncode == 0
        assert TOKEN not in process.output()
        assert "preStop refused: missing or wrong token" in process.output()


def _in_flight(process: PillionProcess) -> float:
    body = http("GET", f"{process.status_url}/metrics")[2].decode()
    for row in body.splitlines():
        if row.startswith("pillion_connections_active{") and 'listener="inbound"' in row:
            return float(row.rpartition(" ")[2])
    return 0.0


@pytest.mark.parametrize("how", ["config", "environment"])
def test_the_exit_file_ends_pillion(tmp_path: Path, how: str) -> None:
    exit_file = tmp_path / "shared" / "exit"
    exit_file.parent.mkdir()
    lifecycle = f"lifecycle: {{exit_file: {exit_file}}}\n" if how == "config" else ""
    env = {"PILLION_EXIT_FILE": str(exit_file)} if how == "environment" else {}
    with running_pillion(tmp_path, lifecycle, env=env) as process:
        assert process.proc.poll() is None
        exit_file.touch()
        assert process.wait_exit() == 0
        assert process.wait_for_log("exit file found: the app has finished")["path"] == str(
            exit_file
        )
