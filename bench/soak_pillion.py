"""The Pillion under soak: its config (and the good and bad variants a reload
swaps in), its process, its metrics, and its RSS and open file descriptors read
from ``/proc``.

The reloads change one value, ``proxy.inbound[0].max_connections``: a good file
sets it to 10000 or 10001 in turn (harmless, but the proxy is rebuilt on its
listening sockets, and the logs and secrets components with it), a bad one to 0,
which validation refuses (``ge=1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak_wire import read_response, request_head

HOST = "127.0.0.1"
MAX_CONNECTIONS = {"base": 10000, "good-a": 10001, "good-b": 10000, "bad": 0}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Ports:
    admin: int
    status: int
    inbound: int
    outbound: int
    tcp_inbound: int
    tcp_outbound: int
    app_http: int
    app_tcp: int
    syslog: int


@dataclass(frozen=True)
class Paths:
    work: Path
    logs: Path
    secrets: Path
    token: Path

    @property
    def cert(self) -> Path:
        return self.secrets / "cert.pem"

    @property
    def kv(self) -> Path:
        return self.secrets / "app.env"


def config_text(ports: Ports, paths: Paths, vault: str, renew: float, variant: str) -> str:
    """The whole pillion.yaml; ``variant`` picks the value a reload changes."""
    ttl = round(renew * 1.5)
    return f"""# written by bench/soak.py ({variant})
app: {{host: {HOST}, port: {ports.app_http}}}
admin: {{listen: "{HOST}:{ports.admin}"}}
status: {{listen: "{HOST}:{ports.status}"}}
telemetry: {{log_level: info}}
proxy:
  inbound:
    - name: inbound
      listen: "{HOST}:{ports.inbound}"
      max_connections: {MAX_CONNECTIONS[variant]}
  outbound:
    - {{name: outbound, listen: "{HOST}:{ports.outbound}", cluster: app}}
  clusters:
    - {{name: app, endpoints: ["{HOST}:{ports.app_http}"]}}
  tcp:
    - {{name: tcp-inbound, listen: "{HOST}:{ports.tcp_inbound}",
       upstream: "{HOST}:{ports.app_tcp}"}}
    - {{name: tcp-outbound, listen: "{HOST}:{ports.tcp_outbound}",
       upstream: "{HOST}:{ports.app_tcp}"}}
logs:
  checkpoints: {paths.work}/state/logs.db
  inputs:
    - {{name: app, paths: ["{paths.logs}/*.log"]}}
  outputs:
    - {{name: receiver, type: syslog, address: "{HOST}:{ports.syslog}", hostname: soak}}
secrets:
  vault:
    address: {vault}
    auth: {{method: token, token_file: {paths.token}}}
  sources:
    - {{name: cert, type: pki, path: pki/issue/soak, common_name: soak.local, ttl: {ttl}s}}
    - {{name: app, type: kv, path: secret/soak, refresh: {renew:g}s}}
  templates:
    - {{name: cert, destination: {paths.cert}, format: raw, source: cert, key: certificate,
       mode: "0600"}}
    - {{name: app, destination: {paths.kv}, format: dotenv, source: app, mode: "0600"}}
"""


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- HTTP to the admin and status servers ----------------------------------------------


async def http_get(port: int, path: str, within: float = 5.0) -> tuple[int, bytes]:
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(request_head(path, f"{HOST}:{port}", close=True))
            response = await read_response(reader)
            return response.status, response.body
        finally:
            writer.close()


Metrics = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Metrics:
    """Prometheus text: (name, labels) -> value."""
    samples: Metrics = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None or line.startswith("#"):
            continue
        name, labels, value = found.groups()
        pairs = frozenset(_LABEL.findall(labels or ""))
        with contextlib.suppress(ValueError):
            samples[(name, pairs)] = float(value)
    return samples


def metric(samples: Metrics, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` that carry all of ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= pairs)


# --- the process -----------------------------------------------------------------------


class PillionError(Exception):
    """Pillion did not start, or stopped."""


class Pillion:
    def __init__(self, executable: Path, config: Path, log: Path, ports: Ports) -> None:
        self.executable, self.config, self.log, self.ports = executable, config, log, ports
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, text: str) -> None:
        """Atomically, as a ConfigMap update would: a new file renamed over the old."""
        temporary = self.config.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(self.config)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.executable), "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def exit_reason(self) -> str | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"pillion exited with code {self.proc.returncode}"

    async def wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            gone = self.exit_reason()
            if gone is not None:
                raise PillionError(gone)
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
                if (await http_get(self.ports.status, "/healthz/ready"))[0] == 200:
                    return
            await asyncio.sleep(0.2)
        raise PillionError(f"not ready after {within:.0f}s")

    async def metrics(self) -> Metrics:
        status, body = await http_get(self.ports.status, "/metrics")
        if status != 200:
            raise PillionError(f"/metrics answered {status}")
        return parse_metrics(body.decode())

    async def config_dump(self) -> dict[str, Any]:
        status, body = await http_get(self.ports.admin, "/config")
        if status != 200:
            raise PillionError(f"/config answered {status}")
        document: dict[str, Any] = json.loads(body)
        return document

    def reload(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (Pillion drains), SIGKILL to its session if it lingers; its exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        return proc.returncode
