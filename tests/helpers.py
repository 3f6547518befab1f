"""Test helpers: free ports, a real ``pillion run`` subprocess, and raw HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_GIVEN: set[int] = set()


def free_port() -> int:
    """A TCP port nothing listens on now, never one handed out before in this run
    (the kernel may offer a just-released port again before its user binds it)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib; returns status, headers and body, also for 4xx/5xx."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def status_line(response: bytes) -> str:
    return response.split(b"\r\n", 1)[0].decode()


def write_config(directory: Path, text: str, name: str = "pillion.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


@dataclass
class PillionProcess:
    """A real ``python -m pillion run`` child; its stderr lines are collected."""

    config: Path
    admin_port: int
    status_port: int
    env: Mapping[str, str] | None = None
    wrapper: Sequence[str] = ()  # a command that runs pillion (e.g. in a mount namespace)
    proc: subprocess.Popen[str] = field(init=False)
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread = field(init=False)

    def start(self) -> PillionProcess:
        self.proc = subprocess.Popen(
            [*self.wrapper, sys.executable, "-m", "pillion", "run", "-c", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(self.env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pillion exited {self.proc.returncode}: {self.output()}")
            try:
                status, _, _ = http("GET", f"{self.status_url}/healthz/ready", timeout=1)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"pillion not ready in {timeout}s: {self.output()}")

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def wait_for_log(self, message: str, timeout: float = 10.0, count: int = 1) -> dict[str, Any]:
        """The ``count``-th record with this message, once it is logged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.records() if r.get("message") == message]
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"no log {message!r} in {timeout}s: {self.output()}")

    def records(self) -> list[dict[str, Any]]:
        return [r for r in map(_json_or_none, self.lines) if r is not None]

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def wait_until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met in {timeout}s"
        time.sleep(0.05)


@contextlib.contextmanager
def running_pillion(directory: Path, body: str, app_port: int = 8080) -> Iterator[PillionProcess]:
    """A ready ``pillion run``: the app on ``app_port``, admin and status on free
    loopback ports, then the YAML ``body`` (the sections under test)."""
    admin, status = free_port(), free_port()
    config = write_config(
        directory,
        f"app: {{port: {app_port}}}\nadmin: {{listen: 127.0.0.1:{admin}}}\n"
        f"status: {{listen: 127.0.0.1:{status}}}\n{body}",
    )
    process = PillionProcess(config, admin, status).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def blackholed_port() -> Iterator[int]:
    """A loopback port where connecting hangs: it listens, never accepts, and its
    accept queue is full, so the kernel drops further SYNs (a connect timeout)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = [socket.socket() for _ in range(8)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
            yield listener.getsockname()[1]
        finally:
            for filler in fillers:
                filler.close()


def metric_value(exposition: bytes, series: str) -> float | None:
    """The value of ``series`` (name with labels, as exposed) in a scrape, or None."""
    for row in exposition.decode().splitlines():
        name, _, value = row.rpartition(" ")
        if name == series:
            return float(value)
    return None


def base_config(admin_port: int, status_port: int, extra: str = "") -> str:
    return (
        f"admin:\n  listen: 127.0.0.1:{admin_port}\n"
        f"status:\n  listen: 127.0.0.1:{status_port}\n"
        f"lifecycle:\n  drain_timeout: 10s\n{extra}"
    )
