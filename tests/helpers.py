"""Test helpers: free ports, a real ``pillion run`` subprocess, fake HTTP servers,
raw HTTP, and waiting on a condition (never for a fixed time)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def refused(port: int) -> bool:
    """Whether a connection to this loopback port is refused (nothing listens)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def read_by_peer(sock: socket.socket) -> bool:
    """Whether the process at the other end of ``sock``, an IPv4 TCP connection on
    this machine, has read all that was sent on it: nothing waits in either side's
    queue (``/proc/net/tcp``), so it was accepted and its bytes taken."""
    mine, theirs = _proc_net_address(sock.getsockname()), _proc_net_address(sock.getpeername())
    queues: dict[tuple[str, str], tuple[int, int]] = {}
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, _, sizes = row.split()[1:5]
        sent, received = sizes.split(":")
        queues[local, remote] = int(sent, 16), int(received, 16)
    here, there = queues.get((mine, theirs)), queues.get((theirs, mine))
    return here is not None and there is not None and here[0] == 0 and there[1] == 0


def _proc_net_address(address: tuple[str, int]) -> str:
    """``host:port`` as ``/proc/net/tcp`` writes it: hex numbers in host byte order."""
    host = int.from_bytes(socket.inet_aton(address[0]), sys.byteorder)
    return f"{host:08X}:{address[1]:04X}"


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


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (an access log) written so far: a line
    still being written, without its newline yet, is left for the next read."""
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def wait_until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met in {timeout}s"
        time.sleep(0.05)


async def async_wait_until(condition: Callable[[], object]) -> None:
    """``wait_until`` for a test on the event loop: polls without blocking the loop,
    fails after 15 seconds."""
    try:
        async with asyncio.timeout(15):
            while not condition():  # noqa: ASYNC110 (what a test polls has no event)
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError("condition not met in 15s") from None


def pillion_config(
    admin_port: int,
    status_port: int,
    body: str = "",
    *,
    app_port: int | None = None,
    admin: str = "",
) -> str:
    """A config for ``pillion run``: the app's port (Pillion's default when None),
    admin and status on these loopback ports, then the YAML ``body``. ``admin`` is
    more keys of the admin section, as lines indented by two spaces."""
    app = f"app: {{port: {app_port}}}\n" if app_port is not None else ""
    return (
        f"{app}admin:\n  listen: 127.0.0.1:{admin_port}\n{admin}"
        f"status:\n  listen: 127.0.0.1:{status_port}\n{body}"
    )


def base_config(admin_port: int, status_port: int, extra: str = "") -> str:
    """``pillion_config`` with a 10s drain, then ``extra``."""
    return pillion_config(admin_port, status_port, f"lifecycle:\n  drain_timeout: 10s\n{extra}")


@contextlib.contextmanager
def running_pillion(
    directory: Path,
    body: str = "",
    app_port: int | None = None,
    *,
    admin: str = "",
    env: Mapping[str, str] | None = None,
    wrapper: Sequence[str] = (),
    ports: tuple[int, int] | None = None,
    ready: bool = True,
) -> Iterator[PillionProcess]:
    """A ``pillion run`` of ``pillion_config(...)`` written to ``directory``/pillion.yaml,
    stopped on leaving the block.

    ``ports`` are the admin and status ports (default: free loopback ports); ``env``
    is added to the environment; ``wrapper`` is a command that runs Pillion (e.g. in
    a namespace). With ``ready`` the block starts once ``/healthz/ready`` passes;
    without it, at once (for a test that waits on something else, or on the exit).
    """
    admin_port, status_port = ports if ports is not None else (free_port(), free_port())
    config = write_config(
        directory,
        pillion_config(admin_port, status_port, body, app_port=app_port, admin=admin),
    )
    process = PillionProcess(config, admin_port, status_port, env=env, wrapper=wrapper)
    with started(process, ready=ready):
        yield process


@contextlib.contextmanager
def started(process: PillionProcess, *, ready: bool = True) -> Iterator[PillionProcess]:
    """``process`` started (and, with ``ready``, past ``/healthz/ready``), stopped on
    leaving the block."""
    try:
        process.start()
        if ready:
            process.wait_ready()
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def serve_http(
    handler: type[BaseHTTPRequestHandler],
    *,
    port: int = 0,
    tls: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
) -> Iterator[int]:
    """A fake HTTP server on ``host`` (``port``, or a free one) answering with
    ``handler`` in threads; yields its port, shuts it down and closes it on exit.
    With ``tls`` it speaks HTTPS."""
    server = ThreadingHTTPServer((host, port), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    # serve_forever accepts once its selector says a connection waits; a client that
    # gives up in between (Pillion's output cancelling a send) leaves a blocking
    # accept waiting for ever, and shutdown() with it. Non-blocking, that accept fails
    # (an OSError socketserver ignores) and the loop sees the shutdown.
    server.socket.setblocking(False)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=5)


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
