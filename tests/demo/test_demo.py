"""``pillion demo`` as a person runs it: start, try every printed command with curl, Ctrl-C."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, wait_until


@pytest.mark.timeout(120)  # a whole pod: several processes, each started and stopped
def test_demo_starts_every_printed_command_answers_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    ports = {
        "--app-port": free_port(),
        "--admin-port": free_port(),
        "--status-port": free_port(),
        "--proxy-port": free_port(),
        "--limited-port": free_port(),
        "--tcp-port": free_port(),
        "--outbound-port": free_port(),
        "--backend-port": free_port(),
        "--tls-port": free_port(),
        "--statsd-port": free_port(),
        "--grpc-port": free_port(),
        "--collector-port": free_port(),
    }
    args = [arg for option, port in ports.items() for arg in (option, str(port))]
    demo = subprocess.Popen(
        [sys.executable, "-m", "pillion", "demo", *args, "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, "demo exited early:\n" + "".join(output)
            output.append(line)
            if "Ctrl-C stops the pod" in line:
                break
        tour = [
            m.groups() for m in map(re.compile(r"^\s+(.+?)\s{2,}(curl .+)$").match, output) if m
        ]
        assert len(tour) >= 12
        for label, command in tour:
            status = re.search(r": (\d{3})$", label)  # "a smuggling attempt: 400"
            expected = status.group(1) if status else "200"
            result = subprocess.run(
                [*shlex.split(command), "-w", "\n%{http_code}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            body, _, code = result.stdout.rpartition("\n")
            assert (result.returncode, code) == (0, expected), f"{command}: {result.stdout}"
            assert body.strip(), command
            if command.endswith("/config"):
                exporter = json.loads(body)["exporters"]["json"][0]
                assert exporter["headers"]["Authorization"] == "***"
            if command.endswith(f"{ports['--admin-port']}/stats"):  # the dashboard's data
                assert json.loads(body)["schema"] == 1
            elif "/stats" in command:  # the app's
                assert json.loads(body)["status"] == "up"
            if "--cert " in command:  # the client certificate's SPIFFE ID reached the app
                headers = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
                identity = headers["x-pillion-peer-identity"]
                assert identity == "spiffe://cluster.local/ns/demo/sa/client"

        # the gRPC call the tour prints: HTTP/2 on the proxy's port, to the gRPC service
        [grpc_line] = [line for line in output if "a gRPC call through Pillion" in line]
        call = grpc_line.split("Pillion", 1)[1].strip()
        called = subprocess.run(
            shlex.split(call), capture_output=True, text=True, timeout=30, check=False
        )
        assert called.returncode == 0, called.stdout + called.stderr
        assert "x-served-by=demo-grpc" in called.stdout

        assert (tmp_path / "logs" / "app.log").read_text().count('"msg": "request"') >= 2
        # the app's log file reached the log output, line for line
        app_lines = (tmp_path / "logs" / "app.log").read_text().splitlines()
        shipped = tmp_path / "shipped.jsonl"
        wait_until(lambda: shipped.exists() and len(shipped.read_text().splitlines()) >= 2)
        first = json.loads(shipped.read_text().splitlines()[0])
        assert first["input"] == "demo-app"
        assert first["message"] == app_lines[0]

        def scrape() -> str:
            return subprocess.run(
                ["curl", "-s", f"http://127.0.0.1:{ports['--status-port']}/metrics"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip

        wait_until(lambda: "demo_http_duration_count" in scrape())  # UDP: soon, not at once
        metrics = scrape()
        # the backend fails every second call: Pillion retried, and the app saw only 200s
        retried = re.search(
            r'^pillion_upstream_retries_total\{cluster="backend",reason="status"\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
        assert retried is not None
        assert float(retried.group(1)) >= 1
        # the app's JSON stats, as metrics
        assert re.search(r'^demo_app_requests_total\{target="demo-app"\} [1-9]', metrics, re.M)
        assert re.search(r'^demo_app_up\{target="demo-app"\} 1\.0$', metrics, re.M)
        # and the StatsD the app sends: a counter and a timer per request
        assert re.search(r'^demo_http_requests_total\{path="/stats",status="200"\} [1-9]',
                         metrics, re.M)  # fmt: skip
        assert re.search(r'^demo_http_duration_count\{path="/stats"\} [1-9]', metrics, re.M)
        limited = re.search(
            r'^pillion_requests_total\{cluster="",code="429",flags="RL",grpc_status="",listener="inbound",'
            r'method="GET",route="call"\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
        assert limited is not None
        assert float(limited.group(1)) >= 1

        def access() -> list[dict[str, Any]]:
            lines = (tmp_path / "access.log").read_text().splitlines()
            return [json.loads(line) for line in lines]

        # the access log is written in batches
        wait_until(lambda: any(r["request_id"] == "demo-1" and r["code"] == 200 for r in access()))
        wait_until(lambda: any(r["code"] == 400 and r["flags"] == "DPE" for r in access()))
        # the app's files were rendered by Pillion; editing the source renders them again,
        # and the app is told (it counts reloads)
        app_url = f"http://127.0.0.1:{ports['--app-port']}/"

        def app_state() -> dict[str, Any]:
            answer = subprocess.run(["curl", "-s", app_url], capture_output=True, text=True,
                                    check=True).stdout  # fmt: skip
            return dict(json.loads(answer))

        state = app_state()
        assert state["config"]["greeting"] == "hello"
        assert state["secret"]["present"] is True
        assert state["reloads"] == 0
        (tmp_path / "sources" / "app.yaml").write_text("greeting: bonjour\n")
        wait_until(lambda: app_state()["reloads"] == 1)
        assert app_state()["config"] == {"greeting": "bonjour"}
        api_key = (tmp_path / "sources" / "secret" / "api-key").read_text()
        assert (tmp_path / "secrets" / "api-key").read_text() == api_key

        # each request's span reached the collector: /call's trace is Pillion's inbound
        # span, and under it the outbound span of the app's call, retried once
        def spans() -> list[dict[str, Any]]:
            path = tmp_path / "traces.jsonl"
            return (
                [json.loads(line) for line in path.read_text().splitlines()]
                if path.exists()
                else []
            )

        def call_trace() -> tuple[dict[str, Any], dict[str, Any]] | None:
            for server in spans():
                if (
                    server["kind"] == "server"
                    and server["attributes"].get("pillion.route") == "call"
                ):
                    children = [s for s in spans() if s["parent_span_id"] == server["span_id"]]
                    if children:
                        return server, children[0]
            return None

        wait_until(lambda: call_trace() is not None)
        server, client = call_trace()  # type: ignore[misc]
        assert client["kind"] == "client"
        assert client["trace_id"] == server["trace_id"]
        assert client["attributes"]["pillion.cluster"] == "backend"
        traces = subprocess.run(
            ["curl", "-s", f"http://127.0.0.1:{ports['--collector-port']}/traces"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert f"trace {server['trace_id']}" in traces
        pid = int(re.search(r"kill -HUP (\d+)", "".join(output)).group(1))  # type: ignore[union-attr]
    finally:
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, rest
    assert (
        "stopped: demo app exit 0, backend exit 0, grpc service exit 0, trace collector exit 0, "
        "pillion exit 0"
    ) in rest
    log = [json.loads(line) for line in (tmp_path / "pillion.log").read_text().splitlines()]
    assert log[-1]["message"] == "stopped"
    assert not Path(f"/proc/{pid}").exists()
    assert "demo-stats-token" not in (tmp_path / "pillion.log").read_text()
    assert api_key.strip() not in (tmp_path / "pillion.log").read_text()


def test_print_config_is_the_demos_config_with_its_ports_and_it_validates(tmp_path: Path) -> None:
    def pillion(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pillion", *args], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    printed = pillion("demo", "--print-config", "--app-port", "9000", "--tls-port", "9443",
                      "--workdir", str(tmp_path / "pod"))  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert "${" not in printed.stdout  # nothing left to the environment
    assert "port: 9000" in printed.stdout
    assert "listen: 127.0.0.1:9443" in printed.stdout
    assert f"cert: {tmp_path}/pod/tls/server.crt" in printed.stdout
    assert "# how the app hears that its files changed" in printed.stdout  # comments kept
    assert not (tmp_path / "pod").exists()  # printing makes nothing
    config = tmp_path / "pillion.yaml"
    config.write_text(printed.stdout)
    validated = pillion("validate", "-c", str(config))
    assert validated.returncode == 0, validated.stderr
    assert "features on: proxy, logs, secrets, config, exporters" in validated.stdout
