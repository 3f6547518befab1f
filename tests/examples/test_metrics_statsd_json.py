"""``examples/metrics-statsd-json.yaml`` run as it is: real StatsD datagrams over
UDP and a loopback JSON stats endpoint, read back from the status port's
``/metrics`` as Prometheus would (the text parsed, and ``promtool check metrics``)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.examples.running import running_example
from tests.helpers import PillionProcess, free_port, http, serve_http, wait_until

STATS = {
    "status": "degraded",
    "uptime_seconds": 86400,
    "orders": {"processed": 1234, "failed": 5},
    "db": {"pool": {"active": 3, "idle": 7, "max": 10}},
    "queues": [{"name": "email", "depth": 4}, {"name": "webhooks", "depth": 0}],
}

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


class StatsHandler(BaseHTTPRequestHandler):
    """The app's JSON stats endpoint."""

    def do_GET(self) -> None:
        if self.path != "/internal/stats":
            self.send_error(404)
            return
        body = json.dumps(STATS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def scrape(process: PillionProcess) -> str:
    status, _, body = http("GET", f"{process.status_url}/metrics", timeout=10)
    assert status == 200
    return body.decode()


def series(page: str) -> Series:
    """Every sample of a scrape by name and labels, as Prometheus's parser reads it."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(page: str, name: str, **labels: str) -> float | None:
    return series(page).get((name, frozenset(labels.items())))


def promtool_accepts(page: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package; `make test` installs it"
    check = subprocess.run([promtool, "check", "metrics"], input=page.encode(),
                           capture_output=True, timeout=60, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_statsd_and_json_stats_on_the_status_port(tmp_path: Path) -> None:
    udp = free_port()  # a TCP port found free; UDP on the same number is as free on loopback
    with (
        serve_http(StatsHandler) as app_port,
        running_example(
            "metrics-statsd-json.yaml",
            tmp_path,
            moves={
                "udp: 127.0.0.1:9125": f"udp: 127.0.0.1:{udp}",
                "http://127.0.0.1:8080/internal/stats": (
                    f"http://127.0.0.1:{app_port}/internal/stats"
                ),
            },
        ) as process,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as statsd,
    ):
        lines = [
            "shop.http.checkout.post.duration:87|ms",
            "shop.http.checkout.post.duration:240|ms",
            "shop.http.cart.get.duration:4|ms",
            "shop.orders.eu.created:1|c",
            "shop.orders.eu.created:2|c",
            "shop.orders.us.failed:1|c",
            "shop.debug.user.4711.clicks:1|c",
            "shop.cache.hits:5|c",  # no rule: the name as it is
        ]
        statsd.sendto("\n".join(lines).encode(), ("127.0.0.1", udp))
        wait_until(lambda: value(scrape(process), "pillion_statsd_samples_total") == len(lines))
        page = scrape(process)

    assert value(page, "shop_orders_total", region="eu", outcome="created") == 3.0
    assert value(page, "shop_orders_total", region="us", outcome="failed") == 1.0
    assert value(page, "shop_cache_hits_total") == 5.0

    # timers: milliseconds observed as seconds into the rule's buckets
    checkout = {"handler": "checkout", "method": "post"}
    duration = "shop_http_request_duration_seconds"
    assert value(page, f"{duration}_bucket", **checkout, le="0.05") == 0.0
    assert value(page, f"{duration}_bucket", **checkout, le="0.1") == 1.0
    assert value(page, f"{duration}_bucket", **checkout, le="0.25") == 2.0
    assert value(page, f"{duration}_bucket", **checkout, le="+Inf") == 2.0
    assert value(page, f"{duration}_count", **checkout) == 2.0
    assert value(page, f"{duration}_sum", **checkout) == pytest.approx(0.327)
    assert value(page, f"{duration}_bucket", handler="cart", method="get", le="0.01") == 1.0
    assert "# HELP shop_http_request_duration_seconds HTTP request duration by handler " in page

    # the drop rule: no series, and counted
    assert "shop_debug" not in page
    assert value(page, "pillion_statsd_dropped_total", reason="mapping") == 1.0

    # the JSON endpoint: numbers, the value map, one series per queue
    assert value(page, "pillion_exporter_json_up", target="shop") == 1.0
    assert value(page, "shop_orders_processed_total", target="shop") == 1234.0
    assert value(page, "shop_db_pool_active_connections", target="shop") == 3.0
    assert value(page, "shop_status", target="shop") == 0.5  # "degraded"
    assert value(page, "shop_queue_depth", queue="email", target="shop") == 4.0
    assert value(page, "shop_queue_depth", queue="webhooks", target="shop") == 0.0
    assert "# TYPE shop_orders_processed_total counter" in page

    promtool_accepts(page)
