"""``app.health`` folds the app's own health into ``/healthz/ready``."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.helpers import free_port, http, running_pillion, serve_http


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/ready" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _wait_status(url: str, expected: int, timeout: float = 10.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _, body = http("GET", url)
        except OSError as exc:  # not listening yet
            status, body = 0, str(exc).encode()
        if status == expected:
            parsed: dict[str, object] = json.loads(body)
            return parsed
        assert time.monotonic() < deadline, f"{url} stayed {status}: {body!r}"
        time.sleep(0.1)


def test_readiness_follows_the_app(tmp_path: Path) -> None:
    app_port = free_port()
    body = f"lifecycle:\n  drain_timeout: 10s\napp:\n  port: {app_port}\n  health: /ready\n"
    with running_pillion(tmp_path, body, ready=False) as process:
        ready_url = f"{process.status_url}/healthz/ready"
        health = _wait_status(ready_url, 503)  # no app yet: started, live, not ready
        assert health["failing"] == ["app"]
        assert http("GET", f"{process.status_url}/healthz/started")[0] == 200
        assert http("GET", f"{process.status_url}/healthz/live")[0] == 200

        with serve_http(_Health, port=app_port):
            _wait_status(ready_url, 200)

            _Health.status = 503  # the app reports itself unhealthy
            assert _wait_status(ready_url, 503)["failing"] == ["app"]
            messages = [r["message"] for r in process.records()]
            assert "app is healthy" in messages
            assert "app is not healthy" in messages
