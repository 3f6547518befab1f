"""``GET /prestop`` (the app's preStop hook) and ``lifecycle.exit_file``, on a real
``pillion run``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, http, wait_until, write_config

TOKEN = "prestop-t0ken-never-logged"


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        body = b"app\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def app() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _sidecar(
    tmp_path: Path, app: int, env: dict[str, str], workers: int = 1
) -> tuple[PillionProcess, int, int]:
    admin, status, inbound, outbound = free_port(), free_port(), free_port(), free_port()
    config = write_config(
        tmp_path,
        f"""app: {{port: {app}}}
admin: {{listen: 127.0.0.1:{admin}}}
status: {{listen: 127.0.0.1:{status}}}
proxy:
  workers: {workers}
  access_log: null
  inbound: [{{listen: 127.0.0.1:{inbound}}}]
  outbound: [{{listen: 127.0.0.1:{outbound}, cluster: app}}]
  clusters: [{{name: app, endpoints: ["127.0.0.1:{app}"]}}]
""",
    )
    process = PillionProcess(config, admin, status, env=env).start()
    process.wait_ready()
    return process, inbound, outbound


def _prestop(process: PillionProcess, authorization: str | None) -> int:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return http("GET", f"{process.status_url}/prestop", headers=headers, timeout=30)[0]


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_off_without_a_token(tmp_path: Path, app: int) -> None:
    process, inbound, _ = _sidecar(tmp_path, app, {"PILLION_PRESTOP_TOKEN": ""})
    try:
        assert _prestop(process, f"Bearer {TOKEN}") == 404
        assert http("GET", f"http://127.0.0.1:{inbound}/")[0] == 200  # nothing drained
    finally:
        process.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_hook_drains_inbound_only_and_answers_when_requests_are_done(
    tmp_path: Path, app: int, workers: int
) -> None:
    env = {"PILLION_PRESTOP_TOKEN": TOKEN}
    process, inbound, outbound = _sidecar(tmp_path, app, env, workers)
    try:
        # a wrong or missing token changes nothing
        assert _prestop(process, None) == 401
        assert _prestop(process, "Bearer wrong") == 401
        assert _prestop(process, TOKEN) == 401  # not a bearer
        assert http("GET", f"{process.status_url}/healthz/ready")[0] == 200
        assert http("GET", f"{process.admin_url}/config")[2].count(b"***") >= 1

        finished: list[str] = []

        def slow() -> None:
            status = http("GET", f"http://127.0.0.1:{inbound}/slow", timeout=10)[0]
            finished.append(f"slow {status}")

        in_flight = threading.Thread(target=slow)
        in_flight.start()
        wait_until(lambda: _in_flight(process) == 1)
        assert _prestop(process, f"Bearer {TOKEN}") == 200
        finished.append("prestop 200")
        in_flight.join()
        assert finished == ["slow 200", "prestop 200"]

        assert _refused(inbound)  # no new inbound connection
        assert http("GET", f"{process.status_url}/healthz/ready")[0] == 503
        assert http("GET", f"http://127.0.0.1:{outbound}/")[0] == 200  # the app's calls go on
        assert _prestop(process, f"Bearer {TOKEN}") == 200  # again: already drained
        process.stop()
        assert process.proc.returncode == 0
        assert TOKEN not in process.output()
        assert "preStop refused: missing or wrong token" in process.output()
    finally:
        process.stop()


def _in_flight(process: PillionProcess) -> float:
    body = http("GET", f"{process.status_url}/metrics")[2].decode()
    for row in body.splitlines():
        if row.startswith("pillion_connections_active{") and 'listener="inbound"' in row:
            return float(row.rpartition(" ")[2])
    return 0.0


@pytest.mark.parametrize("how", ["config", "environment"])
def test_the_exit_file_ends_pillion(tmp_path: Path, how: str) -> None:
    admin, status = free_port(), free_port()
    exit_file = tmp_path / "shared" / "exit"
    exit_file.parent.mkdir()
    lifecycle = f"lifecycle: {{exit_file: {exit_file}}}\n" if how == "config" else ""
    config = write_config(
        tmp_path,
        f"admin: {{listen: 127.0.0.1:{admin}}}\nstatus: {{listen: 127.0.0.1:{status}}}\n"
        + lifecycle,
    )
    env = {"PILLION_EXIT_FILE": str(exit_file)} if how == "environment" else {}
    process = PillionProcess(config, admin, status, env=env).start()
    try:
        process.wait_ready()
        assert process.proc.poll() is None
        exit_file.touch()
        assert process.wait_exit() == 0
        assert process.wait_for_log("exit file found: the app has finished")["path"] == str(
            exit_file
        )
    finally:
        process.stop()
