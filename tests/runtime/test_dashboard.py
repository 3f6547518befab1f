"""The dashboard (``GET /``) and its data (``GET /stats``) on a real ``pillion run``
with traffic through its proxy to real upstreams, one of which is killed, and log
lines shipped; the page in a real browser (headless Chromium).

``PILLION_DASHBOARD_SCREENSHOT=docs/dashboard.png`` makes the browser test save
the page once its charts hold ``PILLION_DASHBOARD_SCREENSHOT_POINTS`` points (60 by
default; give it ``--timeout 300``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests import browser
from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    refused,
    running_pillion,
    serve_http,
    wait_until,
)

INTERVAL = 0.5  # seconds between two points of the history, for the tests
# an attribute of the first element a selector finds, read at once (the page
# redraws its tables: an element found first and read later may be gone)
_ATTRIBUTE = """
const found = document.querySelector(arguments[0]);
return found ? found.dataset[arguments[1]] : null;
"""


class _Shop(BaseHTTPRequestHandler):
    """An upstream: ``/fail`` answers 500, ``/api/slow`` takes a little longer.

    (``/fail`` goes to the app, not to the cluster, whose outlier detection would
    eject the endpoint that stays up after two 500s in a row.)"""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status = 500 if self.path.startswith("/fail") else 200
        if self.path.startswith("/api/slow"):
            threading.Event().wait(random.uniform(0.01, 0.04))  # its own latency, not a test wait
        body = b'{"ok": true}\n'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@dataclass
class Site:
    pillion: PillionProcess
    proxy: str
    alive: str  # host:port of the endpoint that stays up
    killed: str  # host:port of the endpoint stopped after the start
    app_log: Path

    def stats(self) -> dict[str, Any]:
        status, headers, body = http("GET", f"{self.pillion.admin_url}/stats")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        document: dict[str, Any] = json.loads(body)
        return document


class _Load(threading.Thread):
    """Requests through the proxy, at a rate that wanders, until stopped."""

    def __init__(self, proxy: str, app_log: Path) -> None:
        super().__init__(daemon=True)
        self.proxy = proxy
        self.app_log = app_log
        self.stopped = threading.Event()
        self.sent = 0

    def run(self) -> None:
        paths = ["/api/orders"] * 6 + ["/api/slow"] * 3 + ["/"] * 3 + ["/fail"]
        with self.app_log.open("a") as log:
            while not self.stopped.is_set():
                path = random.choice(paths)
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"{self.proxy}{path}", timeout=5).read()
                self.sent += 1
                log.write(json.dumps({"msg": "served", "path": path, "n": self.sent}) + "\n")
                log.flush()
                pace = 0.01 + 0.03 * (1 + (self.sent // 200) % 3)  # busier and quieter spells
                self.stopped.wait(random.uniform(0, pace))  # pacing of the load, not a test wait

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def _config(tmp: Path, proxy_port: int, alive: int, killed: int) -> str:
    (tmp / "app").mkdir()
    return f"""
lifecycle: {{drain_timeout: 2s}}
proxy:
  access_log: null
  inbound:
    - name: inbound
      listen: 127.0.0.1:{proxy_port}
      routes:
        - {{name: api, match: {{prefix: /api}}, cluster: orders}}
        - {{name: app, match: {{prefix: /}}}}
  clusters:
    - name: orders
      endpoints: ["127.0.0.1:{alive}", "127.0.0.1:{killed}"]
      outliers: {{consecutive_errors: 2, base_ejection: 5m, max_ejection: 10m}}
logs:
  checkpoints: {tmp}/logs.db
  inputs: [{{name: app, paths: ["{tmp}/app/*.log"]}}]
  outputs: [{{name: archive, type: file, path: {tmp}/shipped.jsonl, batch_timeout: 20ms}}]
"""


@contextlib.contextmanager
def _killable_upstream(directory: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Another process serving ``directory`` over HTTP (a connection per request, so
    none outlives it): its port and the process, to kill."""
    for name in ("orders", "slow"):
        (directory / "api").mkdir(parents=True, exist_ok=True)
        (directory / "api" / name).write_text('{"ok": true}\n')
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: not refused(port))
        yield port, process
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard")
    proxy_port = free_port()
    with contextlib.ExitStack() as stack:
        alive = stack.enter_context(serve_http(_Shop))
        killed, doomed = stack.enter_context(_killable_upstream(tmp / "www"))
        pillion = stack.enter_context(
            running_pillion(
                tmp,
                _config(tmp, proxy_port, alive, killed),
                app_port=alive,
                env={"PILLION_DASHBOARD_INTERVAL": str(INTERVAL)},
            )
        )
        proxy = f"http://127.0.0.1:{proxy_port}"
        for _ in range(4):  # both endpoints take requests
            assert http("GET", f"{proxy}/api/orders")[0] == 200
        doomed.kill()  # what reaches it from now on is refused
        doomed.wait()
        site = Site(pillion, proxy, f"127.0.0.1:{alive}", f"127.0.0.1:{killed}",
                    tmp / "app" / "app.log")  # fmt: skip
        load = _Load(proxy, site.app_log)
        load.start()
        stack.callback(load.stop)
        yield site


def _series(stats: dict[str, Any], kind: str, name: str) -> dict[str, Any] | None:
    for series in stats["history"]["series"]:
        if (series["kind"], series["name"]) == (kind, name):
            found: dict[str, Any] = series
            return found
    return None


def _known(values: list[float | None] | None) -> list[float]:
    return [v for v in values or [] if v is not None]


def test_stats_has_rate_errors_and_latency_series_per_listener_route_and_cluster(
    site: Site,
) -> None:
    def full() -> bool:
        stats = site.stats()
        listener = _series(stats, "listener", "inbound")
        route = _series(stats, "route", "inbound/api")
        cluster = _series(stats, "cluster", "orders")
        return (
            listener is not None
            and route is not None
            and cluster is not None
            and len(_known(listener["rate"])) >= 3
            and any(v > 0 for v in _known(listener.get("errors")))  # /fail: 500s
            and len(_known(listener.get("p99"))) >= 1
            and len(_known(route["rate"])) >= 3
        )

    wait_until(full, timeout=30)
    stats = site.stats()
    history = stats["history"]
    assert history["interval_seconds"] == INTERVAL
    assert history["points"] == 180
    assert history["capped"] is False
    assert len(history["time"]) <= history["points"]
    listener = _series(stats, "listener", "inbound")
    assert listener is not None
    assert all(len(listener[f]) == len(history["time"]) for f in ("rate", "p50", "p99"))
    assert all(0 <= e <= 1 for e in _known(listener["errors"]))
    p50, p99 = _known(listener["p50"])[-1], _known(listener["p99"])[-1]
    assert 0 < p50 <= p99
    route = _series(stats, "route", "inbound/api")
    assert route is not None
    assert "p50" not in route  # latency is counted per listener only


def test_the_killed_upstream_shows_as_ejected(site: Site) -> None:
    def ejected() -> bool:
        clusters = {c["name"]: c for c in site.stats()["clusters"]}
        return bool(clusters["orders"]["ejected"] == 1)

    wait_until(ejected, timeout=30)
    stats = site.stats()
    (orders,) = stats["clusters"]
    assert orders["healthy"] == 1
    assert orders["ejections"] >= 1
    states = {e["address"]: e["state"] for e in orders["endpoints"]}
    assert states == {site.alive: "healthy", site.killed: "ejected"}
    ejection = next(e for e in orders["endpoints"] if e["address"] == site.killed)
    assert ejection["ejected_until"] > stats["time"]
    logged = [r for r in stats["recent_errors"] if r["message"] == "endpoint ejected"]
    assert logged[-1]["fields"]["endpoint"] == site.killed
    assert logged[-1]["level"] == "warning"


def test_components_and_config_are_in_stats(site: Site) -> None:
    stats = site.stats()
    components = stats["health"]["components"]
    assert {name: c["state"] for name, c in components.items()} == {
        "status": "running", "admin": "running", "proxy": "running", "logs": "running",
    }  # fmt: skip
    assert stats["health"]["ready"] is True
    assert stats["config"]["last_reload_successful"] is True
    assert stats["config"]["loaded_at"] <= stats["time"]
    assert stats["secrets"] is None
    assert stats["process"]["resident_memory_bytes"] > 0


def test_the_log_pipeline_is_in_stats(site: Site) -> None:
    def shipping() -> bool:
        logs = site.stats()["logs"]
        return (
            logs is not None
            and logs["inputs"][0]["lines"] > 10
            and logs["outputs"][0]["lines"] > 10
            and (logs["inputs"][0]["lines_per_second"] or 0) > 0
        )

    wait_until(shipping, timeout=30)
    logs = site.stats()["logs"]
    (source,) = logs["inputs"]
    assert source["name"] == "app"
    assert [f["file"] for f in source["files"]] == [str(site.app_log)]
    (archive,) = logs["outputs"]
    assert archive["name"] == "archive"
    assert archive["dead_letters"] == 0
    assert logs["buffer"]["memory_limit_bytes"] == 16 * 1024 * 1024
    assert logs["buffer"]["full"] is False


def test_stats_is_never_cached(site: Site) -> None:
    _, headers, _ = http("GET", f"{site.pillion.admin_url}/stats")
    assert headers["Cache-Control"] == "no-store"


def test_the_page_and_its_assets(site: Site) -> None:
    status, headers, body = http("GET", f"{site.pillion.admin_url}/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy  # no inline script, no other origin
    assert headers["X-Content-Type-Options"] == "nosniff"
    page = body.decode()
    assert 'src="static/uPlot.iife.min.js"' in page
    assert "://" not in page  # nothing from elsewhere
    assert 'href="/stats"' in page  # the endpoints, at the foot
    for path, content_type in [
        ("/static/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
        ("/static/dashboard.js", "text/javascript; charset=utf-8"),
        ("/static/uPlot.min.css", "text/css; charset=utf-8"),
        ("/static/dashboard.css", "text/css; charset=utf-8"),
    ]:
        status, headers, body = http("GET", f"{site.pillion.admin_url}{path}")
        assert status == 200, path
        assert headers["Content-Type"] == content_type
        assert len(body) > 500
    assert http("GET", f"{site.pillion.admin_url}/static/nope.js")[0] == 404


def test_a_real_browser_draws_the_dashboard_live(site: Site) -> None:
    screenshot = os.environ.get("PILLION_DASHBOARD_SCREENSHOT")
    with browser.chromium(width=1200, height=900) as driver:
        driver.get(f"{site.pillion.admin_url}/")

        def points(chart: str) -> int:
            return int(driver.execute_script(_ATTRIBUTE, f'[data-chart="{chart}"]', "points") or 0)

        def state(address: str) -> str | None:
            found = driver.execute_script(_ATTRIBUTE, f'tr[data-endpoint="{address}"]', "state")
            return str(found) if found is not None else None

        rate = "listener/inbound/rate"
        wait_until(lambda: points(rate) >= 2, timeout=30)
        before = points(rate)
        wait_until(lambda: points(rate) > before, timeout=30)  # the page keeps up
        for chart in ("listener/inbound/latency", "route/inbound/api/errors",
                      "cluster/orders/rate", "log_input/app/rate"):  # fmt: skip
            wait_until(functools.partial(lambda c: points(c) >= 1, chart), timeout=30)
        # each chart is a uPlot canvas
        assert driver.find_elements(By.CSS_SELECTOR, f'[data-chart="{rate}"] canvas')

        wait_until(lambda: state(site.killed) == "ejected", timeout=30)
        assert state(site.alive) == "healthy"
        assert "ejected until" in driver.find_element(By.ID, "clusters").text
        errors = driver.find_element(By.ID, "errors").text
        assert "endpoint ejected" in errors
        assert "/quitquitquit" in driver.find_element(By.ID, "endpoints").text
        refused_by_policy = [
            entry for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
        ]  # fmt: skip
        assert refused_by_policy == []
        if screenshot:
            wanted = int(os.environ.get("PILLION_DASHBOARD_SCREENSHOT_POINTS", "60"))
            wait_until(lambda: points(rate) >= wanted, timeout=wanted * INTERVAL * 3 + 30)
            height, chrome = driver.execute_script(
                "return [document.body.scrollHeight, window.outerHeight - window.innerHeight]"
            )
            driver.set_window_size(1200, height + chrome)
            driver.save_screenshot(screenshot)
