"""Metrics from log lines, through the log pipeline; and a real Prometheus
scraping Pillion, the test asking Prometheus's HTTP API for the series that came
from log lines and from StatsD."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PillionProcess, free_port, http, metric_value, running_pillion, wait_until

LINES = [
    "GET /api status=200 took=0.120 queue=3",
    "GET /api status=200 took=0.030 queue=5",
    "POST /api status=500 took=1.500 queue=4",
    "GET /health status=200 took=abc queue=1",  # a duration that is not a number
    "something else entirely",
]


STATSD_PORT = free_port()


@pytest.fixture
def pillion(tmp_path: Path) -> Iterator[PillionProcess]:
    (tmp_path / "logs").mkdir()
    body = f"""
logs:
  checkpoints: {tmp_path}/state/logs.db
  inputs:
    - {{name: web, paths: ["{tmp_path}/logs/*.log"], scan_interval: 50ms}}
  outputs:
    - {{name: archive, type: file, path: {tmp_path}/shipped.jsonl, batch_timeout: 10ms}}
exporters:
  statsd: {{udp: 127.0.0.1:{STATSD_PORT}, tcp: null}}
  from_logs:
    - input: web
      max_series_per_metric: 3
      metrics:
        - name: web_requests_total
          help: Requests by status.
          regex: "status=(?P<status>\\\\d+)"
          labels: [status]
        - name: web_request_seconds
          help: Request durations.
          type: histogram
          regex: "took=(?P<took>\\\\S+)"
          value: took
          buckets: [0.1, 1, 5]
        - name: web_queue_depth
          help: The last queue depth logged.
          type: gauge
          regex: "queue=(?P<depth>\\\\d+)"
          value: depth
        - name: web_paths_total
          help: Requests by path.
          regex: "^\\\\S+ (?P<path>\\\\S+)"
          labels: [path]
"""
    with running_pillion(tmp_path, body) as process:
        yield process


def scrape(process: PillionProcess) -> bytes:
    return http("GET", f"{process.status_url}/metrics")[2]


def test_counters_gauges_and_histograms_from_log_lines(
    tmp_path: Path, pillion: PillionProcess
) -> None:
    (tmp_path / "logs" / "app.log").write_text("".join(f"{line}\n" for line in LINES))
    wait_until(lambda: metric_value(scrape(pillion), 'web_requests_total{status="500"}') == 1.0)
    body = scrape(pillion)
    assert metric_value(body, 'web_requests_total{status="200"}') == 3.0
    assert metric_value(body, "web_request_seconds_count") == 3.0  # "abc" is not a number
    assert metric_value(body, 'web_request_seconds_bucket{le="0.1"}') == 1.0
    assert metric_value(body, "web_request_seconds_sum") == pytest.approx(1.65)
    assert metric_value(body, "web_queue_depth") == 1.0  # the last one
    dropped = (
        'pillion_logs_metric_dropped_total{metric="web_request_seconds",reason="not_a_number"}'
    )
    assert metric_value(body, dropped) == 1.0
    # the lines are still shipped: metrics are taken beside delivery, not instead
    wait_until(lambda: len((tmp_path / "shipped.jsonl").read_text().splitlines()) == len(LINES))
    # free text as a label: the series cap holds (3 paths), the rest is counted
    with (tmp_path / "logs" / "app.log").open("a") as log:
        log.write("".join(f"GET /p{n} status=200 took=0.1 queue=0\n" for n in range(50)))
    cap = 'pillion_logs_metric_dropped_total{metric="web_paths_total",reason="cardinality"}'
    wait_until(lambda: (metric_value(scrape(pillion), cap) or 0) >= 50 - 1)
    body = scrape(pillion)
    assert body.count(b"web_paths_total{") == 3
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_prometheus_scrapes_the_merged_endpoint(tmp_path: Path, pillion: PillionProcess) -> None:
    """A real Prometheus (Debian's package) scrapes Pillion every second; the test asks
    its HTTP API for series that came from log lines."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "make test installs Debian's prometheus package"
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: pillion
    static_configs: [{{targets: ["127.0.0.1:{pillion.status_port}"]}}]
""")
    server = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )  # fmt: skip
    try:
        (tmp_path / "logs" / "app.log").write_text("".join(f"{line}\n" for line in LINES))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"checkout.orders:4|c|#shop:eu", ("127.0.0.1", STATSD_PORT))

        def query(expression: str) -> list[dict[str, object]]:
            url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expression)}"
            try:
                status, _, body = http("GET", url, timeout=5)
            except OSError:
                return []
            if status != 200:
                return []
            return list(json.loads(body)["data"]["result"])

        wait_until(lambda: query('web_requests_total{status="500"}'), timeout=60)
        [series] = query('web_requests_total{status="200"}')
        assert series["value"][1] == "3"  # type: ignore[index]
        assert series["metric"]["job"] == "pillion"  # type: ignore[index]
        [up] = query('up{job="pillion"}')
        assert up["value"][1] == "1"  # type: ignore[index]
        [orders] = query('checkout_orders_total{shop="eu"}')  # from StatsD
        assert orders["value"][1] == "4"  # type: ignore[index]
        [rss] = query("pillion_process_resident_memory_bytes")
        assert float(rss["value"][1]) > 0  # type: ignore[index]
    finally:
        server.terminate()
        server.wait(timeout=30)
