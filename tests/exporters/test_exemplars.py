"""Exemplars: an OpenMetrics scrape shows a trace id on the request-duration
histogram, the id of a request that went through the proxy."""

from __future__ import annotations

import re
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.helpers import free_port, http, running_pillion, serve_http

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_the_duration_histogram_carries_a_trace_id_exemplar(tmp_path: Path) -> None:
    class App(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            pass

    listen = free_port()
    body = f"""proxy:
  inbound:
    - {{name: web, listen: 127.0.0.1:{listen}}}
"""
    with serve_http(App) as app_port, running_pillion(tmp_path, body, app_port) as pillion:
        traceparent = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
        status, _, _ = http("GET", f"http://127.0.0.1:{listen}/", headers=traceparent)
        assert status == 200
        accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
        text = http("GET", f"{pillion.status_url}/metrics", headers=accept)[2].decode()
        exemplars = re.findall(
            r'^pillion_request_duration_seconds_bucket\{[^}]*listener="web"[^}]*\} \S+ '
            r'# \{trace_id="([0-9a-f]{32})"\}',
            text,
            re.MULTILINE,
        )
        assert exemplars == [TRACE]  # on the one bucket the request fell in
        assert text.endswith("# EOF\n")
        plain = http("GET", f"{pillion.status_url}/metrics")[2]
        assert b"trace_id" not in plain  # the text format has no exemplars
        check = subprocess.run(["promtool", "check", "metrics"], input=plain,
                               capture_output=True, timeout=30, check=False)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
