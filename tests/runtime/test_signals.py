"""Lifecycle of a real ``pillion run`` process, driven by real signals."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from tests.helpers import (
    PillionProcess,
    base_config,
    free_port,
    http,
    read_by_peer,
    refused,
    running_pillion,
    wait_until,
)


def test_sigterm_finishes_in_flight_work_refuses_new_work_and_exits_0(
    pillion: PillionProcess,
) -> None:
    body = json.dumps({"level": "debug"}).encode()
    head = (
        b"POST /logging HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", pillion.admin_port), timeout=10) as in_flight:
        in_flight.sendall(head + body[:5])  # the request is in flight: half its body sent
        wait_until(lambda: read_by_peer(in_flight))  # and Pillion has read that half
        pillion.signal(signal.SIGTERM)
        pillion.wait_for_log("stopping")

        # New work is refused: the admin port no longer accepts connections...
        wait_until(lambda: refused(pillion.admin_port))
        # ...and readiness fails while the drain waits for the request in flight.
        status, _, payload = http("GET", f"{pillion.status_url}/healthz/ready")
        assert status == 503
        assert json.loads(payload)["draining"] is True
        assert pillion.proc.poll() is None

        in_flight.sendall(body[5:])
        response = in_flight.makefile("rb").read()
    assert response.startswith(b"HTTP/1.1 200 OK")
    assert response.endswith(b'{"level": "debug"}')
    assert pillion.wait_exit() == 0
    messages = [r["message"] for r in pillion.records()]
    assert messages[-1] == "stopped"
    assert "drain cut short" not in messages


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signals_exit_0(pillion: PillionProcess, signum: signal.Signals) -> None:
    pillion.signal(signum)
    assert pillion.wait_exit() == 0
    assert refused(pillion.status_port)


def test_sighup_applies_a_new_config(pillion: PillionProcess) -> None:
    new_admin = free_port()
    pillion.config.write_text(
        base_config(new_admin, pillion.status_port, "telemetry:\n  log_level: debug\n")
    )
    pillion.signal(signal.SIGHUP)
    pillion.wait_for_log("config reloaded")

    old_admin, pillion.admin_port = pillion.admin_port, new_admin
    status, _, body = http("GET", f"{pillion.admin_url}/config")
    assert status == 200
    assert json.loads(body)["telemetry"]["log_level"] == "debug"
    assert refused(old_admin)
    status, _, body = http("GET", f"{pillion.admin_url}/logging")
    assert json.loads(body)["level"] == "debug"
    _, _, metrics = http("GET", f"{pillion.status_url}/metrics")
    assert b'pillion_config_reloads_total{result="success"} 1.0' in metrics
    assert b"pillion_config_last_reload_successful 1.0" in metrics
    pillion.signal(signal.SIGTERM)
    assert pillion.wait_exit() == 0


def test_sighup_with_a_broken_config_keeps_the_old_one(pillion: PillionProcess) -> None:
    good = pillion.config.read_text()
    pillion.config.write_text(good + "telemetry:\n  log_level: loud\n  colour: red\n")
    pillion.signal(signal.SIGHUP)
    record = pillion.wait_for_log("config reload refused; the previous config keeps running")
    assert record["level"] == "error"
    level_line = len(good.splitlines()) + 2  # after the good lines and "telemetry:"
    assert record["errors"] == [
        f"telemetry.log_level (line {level_line}): "
        "Input should be 'debug', 'info', 'warning' or 'error'",
        f"telemetry.colour (line {level_line + 1}): unknown key; allowed: log_level, tracing",
    ]

    status, _, body = http("GET", f"{pillion.admin_url}/config")  # the old config serves
    assert status == 200
    assert json.loads(body)["telemetry"] == {"log_level": "info", "tracing": None}
    assert http("GET", f"{pillion.status_url}/healthz/ready")[0] == 200
    _, _, metrics = http("GET", f"{pillion.status_url}/metrics")
    assert b'pillion_config_reloads_total{result="error"} 1.0' in metrics
    assert b'pillion_config_reloads_total{result="success"} 0.0' in metrics
    assert b"pillion_config_last_reload_successful 0.0" in metrics

    pillion.config.write_text("app: [unclosed\n")  # a YAML syntax error is refused too
    pillion.signal(signal.SIGHUP)
    pillion.wait_for_log("config reload refused; the previous config keeps running", count=2)
    _, _, metrics = http("GET", f"{pillion.status_url}/metrics")
    assert b'pillion_config_reloads_total{result="error"} 2.0' in metrics
    pillion.signal(signal.SIGTERM)
    assert pillion.wait_exit() == 0


def test_sighup_to_an_address_in_use_keeps_the_old_admin(pillion: PillionProcess) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        pillion.config.write_text(base_config(taken.getsockname()[1], pillion.status_port))
        pillion.signal(signal.SIGHUP)
        record = pillion.wait_for_log("config reload failed; the previous config keeps running")
    assert "address already in use" in record["error"]
    assert http("GET", f"{pillion.admin_url}/config")[0] == 200


def test_quitquitquit_drains_and_exits_0(pillion: PillionProcess) -> None:
    status, _, body = http("POST", f"{pillion.admin_url}/quitquitquit")
    assert (status, json.loads(body)) == (200, {"exiting": True})
    assert pillion.wait_exit() == 0


def test_drain_fails_readiness_but_keeps_admin_and_liveness(pillion: PillionProcess) -> None:
    assert http("POST", f"{pillion.admin_url}/drain")[0] == 200
    status, _, body = http("GET", f"{pillion.status_url}/healthz/ready")
    assert status == 503
    assert json.loads(body)["draining"] is True
    assert http("GET", f"{pillion.status_url}/healthz/live")[0] == 200
    assert http("GET", f"{pillion.admin_url}/config")[0] == 200
    pillion.signal(signal.SIGTERM)
    assert pillion.wait_exit() == 0


def test_probes_fail_until_started(tmp_path: Path) -> None:
    """The status server answers first; the kubelet sees 503, never a refused probe."""
    admin, status = free_port(), free_port()
    with socket.socket() as taken:  # admin cannot start: status must not report started
        taken.bind(("127.0.0.1", admin))
        taken.listen()
        body = "lifecycle:\n  drain_timeout: 10s\n"
        with running_pillion(tmp_path, body, ports=(admin, status), ready=False) as process:
            assert process.wait_exit() == 1
    names = [(r.get("component"), r["message"]) for r in process.records()]
    assert names.index(("status", "listening")) < names.index(("admin", "cannot start"))
