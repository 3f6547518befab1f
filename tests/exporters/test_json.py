"""JSON scraping and the app's merged /metrics: the pure parts, then a real Pillion
scraping a real HTTP server that the test makes fail in each way."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import Metric

from pillion.config.exporters import JsonMetricConfig
from pillion.exporters.appmetrics import merged_families
from pillion.exporters.jsonvalues import extract, parse_path
from tests.helpers import PillionProcess, free_port, http, metric_value, running_pillion, serve_http

STATS = {
    "status": "degraded",
    "healthy": True,
    "queue": {"depth": 7, "workers": "4"},
    "queues": {"mail": {"depth": 3, "state": "up"}, "sms": {"depth": 0, "state": "down"}},
    "shards": [{"id": "a", "lag": 1.5}, {"id": "b", "lag": "lots"}],
    "weird.key": {"v": 2},
}


def rule(**fields: Any) -> JsonMetricConfig:
    return JsonMetricConfig.model_validate({"name": "m", **fields})


def test_paths() -> None:
    assert parse_path("$") == []
    assert parse_path("$.a.b[2]['c.d']") == ["a", "b", 2, "c.d"]
    with pytest.raises(ValueError, match="cannot read"):
        parse_path("$.a...b")


def test_values_value_maps_booleans_and_object_mode() -> None:
    assert extract(STATS, rule(path="$.queue.depth")).samples == [((), 7.0)]
    assert extract(STATS, rule(path="$.queue.workers")).samples == [((), 4.0)]  # numeric text
    assert extract(STATS, rule(path="$.healthy")).samples == [((), 1.0)]
    mapped = rule(path="$.status", value_map={"up": 1, "degraded": 0.5, "down": 0})
    assert extract(STATS, mapped).samples == [((), 0.5)]
    assert extract(STATS, rule(path="$['weird.key'].v")).samples == [((), 2.0)]
    each = rule(path="$.depth", each="$.queues", labels={"queue": "$.@key", "kind": "email"})
    assert extract(STATS, each).samples == [(("mail", "email"), 3.0), (("sms", "email"), 0.0)]
    states = rule(path="$.state", each="$.queues", labels={"queue": "$.@key"},
                  value_map={"up": 1, "down": 0})  # fmt: skip
    assert extract(STATS, states).samples == [(("mail",), 1.0), (("sms",), 0.0)]


def test_missing_and_not_a_number_are_reported_and_skipped() -> None:
    lags = extract(STATS, rule(path="$.lag", each="$.shards", labels={"shard": "$.id"}))
    assert lags.samples == [(("a",), 1.5)]
    assert lags.problems == {"not_a_number": 1}
    assert extract(STATS, rule(path="$.status")).problems == {"not_a_number": 1}  # no map
    assert extract(STATS, rule(path="$.nope")).problems == {"missing": 1}
    assert extract(STATS, rule(path="$.nope", optional=True)).problems == {}
    assert extract(STATS, rule(path="$.x", each="$.nope")).problems == {"missing": 1}


def names(families: list[Metric]) -> list[str]:
    return [family.name for family in families]


def test_the_apps_families_are_renamed_on_collision_and_labelled() -> None:
    text = (
        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        'http_requests_total{code="200"} 5\n'
        "# TYPE pillion_requests_total counter\npillion_requests_total 1\n"
        "# TYPE declared_only gauge\n"
        "# TYPE queue_depth gauge\nqueue_depth 3\n"
        "# TYPE latency histogram\n"
        'latency_bucket{le="1"} 1\nlatency_bucket{le="+Inf"} 2\nlatency_sum 3\nlatency_count 2\n'
    )
    families = merged_families(text, "", {"source": "app"}, reserved={"queue_depth"})
    assert names(families) == ["http_requests", "app_pillion_requests", "app_queue_depth",
                               "latency"]  # fmt: skip
    assert families[0].samples[0].name == "http_requests_total"
    assert families[0].samples[0].labels == {"code": "200", "source": "app"}
    assert [s.name for s in families[3].samples][:1] == ["latency_bucket"]
    prefixed = merged_families(text, "myapp_", {}, reserved=set())
    assert names(prefixed)[0] == "myapp_http_requests"
    with pytest.raises(ValueError, match="could not convert"):
        merged_families("this is { not metrics\n", "", {}, set())


@dataclass
class FakeApp:
    """The app's HTTP server: /stats (JSON) and /metrics, broken on demand."""

    stats: Any = field(default_factory=lambda: json.loads(json.dumps(STATS)))
    metrics: str = "# HELP app_jobs_total Jobs.\n# TYPE app_jobs_total counter\napp_jobs_total 3\n"
    mode: str = "ok"  # ok, slow, not_json, status
    port: int = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if fake.mode == "slow":
                    time.sleep(3)  # an app slower than the scrape's 500ms timeout
                if fake.mode == "status":
                    body, status = b"oops", 500
                elif fake.mode == "not_json" and self.path == "/stats":
                    body, status = b"<html>not json</html>", 200
                elif self.path == "/stats":
                    body, status = json.dumps(fake.stats).encode(), 200
                else:
                    body, status = fake.metrics.encode(), 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the scraper gave up (slow mode)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler


@pytest.fixture
def app() -> Iterator[FakeApp]:
    fake = FakeApp()
    with serve_http(fake.handler()) as fake.port:
        yield fake


@pytest.fixture
def pillion(tmp_path: Path, app: FakeApp) -> Iterator[PillionProcess]:
    exporters = f"""
exporters:
  json:
    - name: app
      url: http://127.0.0.1:{app.port}/stats
      timeout: 500ms
      metrics:
        - {{name: app_queue_depth, path: $.queue.depth, help: Jobs waiting.}}
        - {{name: app_status, path: $.status, value_map: {{up: 1, degraded: 0.5, down: 0}}}}
        - name: app_queue_messages
          each: $.queues
          path: $.depth
          labels: {{queue: $.@key}}
        - name: app_shard_lag_seconds
          each: $.shards
          path: $.lag
          labels: {{shard: $.id}}
    - name: dead
      url: http://127.0.0.1:{free_port()}/stats
      metrics: [{{name: dead_value, path: $.x}}]
  merge_app:
    url: http://127.0.0.1:{app.port}/metrics
    timeout: 500ms
    labels: {{origin: app}}
"""
    with running_pillion(tmp_path, exporters) as process:
        yield process


def scrape(process: PillionProcess) -> bytes:
    return http("GET", f"{process.status_url}/metrics", timeout=10)[2]


def promtool_ok(body: bytes) -> None:
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == b""


def test_json_values_and_the_apps_metrics_are_served(app: FakeApp, pillion: PillionProcess) -> None:
    body = scrape(pillion)
    assert metric_value(body, 'app_queue_depth{target="app"}') == 7.0
    assert metric_value(body, 'app_status{target="app"}') == 0.5
    assert metric_value(body, 'app_queue_messages{queue="mail",target="app"}') == 3.0
    assert metric_value(body, 'app_shard_lag_seconds{shard="a",target="app"}') == 1.5
    assert metric_value(body, 'app_shard_lag_seconds{shard="b",target="app"}') is None
    assert metric_value(body, 'pillion_exporter_json_up{target="app"}') == 1.0
    assert metric_value(body, 'app_jobs_total{origin="app"}') == 3.0
    assert metric_value(body, "pillion_exporter_app_up") == 1.0
    # a target nobody listens on: down and counted, the others unaffected
    assert metric_value(body, 'pillion_exporter_json_up{target="dead"}') == 0.0
    unreachable = 'pillion_exporter_json_errors_total{reason="unreachable",target="dead"}'
    assert metric_value(body, unreachable) == 1.0
    promtool_ok(body)
    errors = 'pillion_exporter_json_errors_total{reason="not_a_number",target="app"}'
    assert (metric_value(body, errors) or 0) >= 1  # shard b's "lots"
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
    openmetrics = http("GET", f"{pillion.status_url}/metrics", timeout=10, headers=accept)[2]
    assert openmetrics.endswith(b"# EOF\n")
    assert b"app_queue_depth" in openmetrics


@pytest.mark.parametrize(("mode", "reason"), [("slow", "timeout"), ("not_json", "not_json"),
                                               ("status", "status")])  # fmt: skip
def test_a_broken_target_is_down_and_pillions_metrics_still_served(
    app: FakeApp, pillion: PillionProcess, mode: str, reason: str
) -> None:
    app.mode = mode
    body = scrape(pillion)
    assert metric_value(body, 'pillion_exporter_json_up{target="app"}') == 0.0
    assert metric_value(body, f'pillion_exporter_json_errors_total{{reason="{reason}",'
                              'target="app"}') == 1.0  # fmt: skip
    assert metric_value(body, 'app_queue_depth{target="app"}') is None  # nothing stale
    assert metric_value(body, "pillion_process_resident_memory_bytes") is not None
    promtool_ok(body)
    app.mode = "ok"
    assert metric_value(scrape(pillion), 'app_queue_depth{target="app"}') == 7.0


def test_malformed_app_metrics_and_name_collisions(app: FakeApp, pillion: PillionProcess) -> None:
    app.metrics = 'broken_metric{label="x" 1\n'  # a missing brace
    body = scrape(pillion)
    assert metric_value(body, "pillion_exporter_app_up") == 0.0
    assert metric_value(body, 'pillion_exporter_app_errors_total{reason="malformed"}') == 1.0
    assert b"broken_metric" not in body
    assert metric_value(body, 'app_queue_depth{target="app"}') == 7.0  # the rest stands
    promtool_ok(body)
    # a collision with a Pillion metric: renamed, never a duplicate # TYPE
    app.metrics = "# TYPE pillion_build_info gauge\npillion_build_info 1\n"
    body = scrape(pillion)
    assert metric_value(body, 'app_pillion_build_info{origin="app"}') == 1.0
    promtool_ok(body)
