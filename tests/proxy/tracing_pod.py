"""A pod for the tracing tests: Pillion with an inbound listener in front of an app
that calls a remote through Pillion's outbound listener, and ``telemetry.tracing``
to a real OTLP receiver (``otlp_receiver``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    running_pillion,
    serve_http,
)
from tests.proxy.otlp_receiver import OtlpReceiver, otlp_receiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
APP_SPAN = "a1a2a3a4a5a6a7a8"
SERVER, CLIENT = 2, 3


@dataclass
class App:
    """The app behind the inbound listener: records what it gets; on ``/chain`` it
    calls the remote through Pillion's outbound listener as an instrumented app
    would, with its own span (``APP_SPAN``) in the same trace."""

    outbound_port: int = 0
    port: int = 0
    seen: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    fail_next: int = 0  # answer this many requests with 503 first
    hold: threading.Event | None = None


@contextlib.contextmanager
def app_server(app: App) -> Iterator[App]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            app.seen.append({"path": self.path, **headers})
            status = app.status
            if app.fail_next:
                app.fail_next -= 1
                status = 503
            if self.path.startswith("/slow") and app.hold is not None:
                app.hold.wait(10)
            if self.path.startswith("/chain"):
                trace = headers["traceparent"].split("-")[1]
                conn = HTTPConnection("127.0.0.1", app.outbound_port, timeout=5)
                conn.request("GET", "/remote", headers={
                    "Host": "remote", "traceparent": f"00-{trace}-{APP_SPAN}-01"})  # fmt: skip
                status = conn.getresponse().status
                conn.close()
            body = b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_http(Handler) as port:
        app.port = port
        yield app


@dataclass
class Pod:
    pillion: PillionProcess
    inbound: int
    outbound: int
    app: App
    remote: App
    receiver: OtlpReceiver

    def get(self, path: str, headers: dict[str, str] | None = None) -> int:
        status, _, _ = http("GET", f"http://127.0.0.1:{self.inbound}{path}", headers=headers)
        return status

    def by_kind(self, kind: int) -> list[Any]:
        return [span for span in self.receiver.spans() if span.kind == kind]

    def metrics(self, accept: str | None = None) -> bytes:
        headers = {"Accept": accept} if accept else None
        _, _, body = http("GET", f"{self.pillion.status_url}/metrics", headers=headers)
        return body


@contextlib.contextmanager
def pod(
    tmp_path: Path,
    tracing: str,
    *,
    receiver_port: int | None = None,
    env: dict[str, str] | None = None,
    workers: int = 1,
) -> Iterator[Pod]:
    """Pillion with an inbound listener in front of ``App``, an outbound listener
    to a remote, and ``telemetry.tracing`` (``tracing``'s lines; ``{otlp}`` is the
    receiver's URL)."""
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver(receiver_port or 0))
        remote = stack.enter_context(app_server(App()))
        app = App()
        inbound, outbound = free_port(), free_port()
        app.outbound_port = outbound
        stack.enter_context(app_server(app))
        body = f"""
telemetry:
  tracing:
{tracing.format(otlp=receiver.url)}
proxy:
  workers: {workers}
  access_log: null
  inbound:
    - listen: 127.0.0.1:{inbound}
      routes:
        - name: health
          match: {{exact: /healthz}}
          direct_response: {{status: 200, body: "ok"}}
        - name: api
          match: {{prefix: /}}
  outbound:
    - {{name: out, listen: 127.0.0.1:{outbound}, cluster: remote}}
  clusters:
    - name: remote
      endpoints: [127.0.0.1:{remote.port}]
      retry: {{max_retries: 2, statuses: [503]}}
"""
        pillion = stack.enter_context(running_pillion(tmp_path, body, app_port=app.port, env=env))
        yield Pod(pillion, inbound, outbound, app, remote, receiver)


FAST = """    otlp: {{endpoint: "{otlp}", flush_interval: 100ms}}"""
