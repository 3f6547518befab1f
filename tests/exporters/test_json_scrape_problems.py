"""Every problem of a JSON target shows the same three ways: `up` 0 (or, for a value
missing from a good document, still 1), a counted reason, and one log line while it
lasts; never a stale value, never a failed scrape. In-process, against a loopback
server whose document the test changes."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from pillion.config import PillionConfig
from pillion.exporters.jsonscrape import JsonExporterComponent
from pillion.exporters.jsonvalues import extract
from pillion.telemetry import Metrics
from tests.helpers import async_wait_until, metric_value, serve_http


@dataclass
class App:
    document: Any = field(default_factory=lambda: {"values": [{"n": 1}], "total": 5})
    raw: bytes | None = None  # sent instead of the document
    port: int = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = app.raw if app.raw is not None else json.dumps(app.document).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler


@pytest.fixture
def app() -> Iterator[App]:
    served = App()
    with serve_http(served.handler()) as served.port:
        yield served


@dataclass
class Scraper:
    metrics: Metrics
    component: JsonExporterComponent

    async def page(self) -> bytes:
        await self.metrics.before_scrape()
        return self.metrics.exposition(None)[0]

    async def value(self, series: str) -> float | None:
        return metric_value(await self.page(), series)


async def scraper_for(app: App, metrics_yaml: list[dict[str, Any]], **target: Any) -> Scraper:
    config = PillionConfig.model_validate({"exporters": {"json": [{
        "name": "app", "url": f"http://127.0.0.1:{app.port}/", "timeout": "2s",
        "metrics": metrics_yaml, **target}]}})  # fmt: skip
    assert config.exporters is not None
    metrics = Metrics(process=False)
    component = JsonExporterComponent(config.exporters.json, metrics)
    await component.start()
    return Scraper(metrics, component)


@pytest.fixture
async def scraper(app: App) -> AsyncIterator[Scraper]:
    found = await scraper_for(app, [
        {"name": "app_n", "path": "$.values[*].n"},  # one value: fine while the list has one
        {"name": "app_total", "path": "$.total"},
    ])  # fmt: skip
    try:
        yield found
    finally:
        await found.component.close()


UP = 'pillion_exporter_json_up{target="app"}'


def errors(reason: str) -> str:
    return f'pillion_exporter_json_errors_total{{reason="{reason}",target="app"}}'


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == message]


async def test_a_path_that_matches_several_values_is_down_counted_and_logged_once(
    app: App, scraper: Scraper, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pillion.exporters")
    page = await scraper.page()
    assert (metric_value(page, UP), metric_value(page, 'app_n{target="app"}')) == (1.0, 1.0)
    app.document = {"values": [{"n": 1}, {"n": 2}], "total": 5}
    for _ in range(3):
        page = await scraper.page()
    assert metric_value(page, UP) == 0.0
    assert metric_value(page, errors("several_values")) == 3.0
    assert metric_value(page, 'app_n{target="app"}') is None  # no stale value
    assert metric_value(page, 'app_total{target="app"}') == 5.0  # the other rule stands
    [record] = logged(caplog, "json target value problem")  # once, not once per scrape
    assert record.__dict__["metric"] == "app_n"
    assert record.__dict__["reason"] == "several_values"
    assert "path $.values[*].n matched 2 values where one is needed" in record.__dict__["error"]
    app.document = {"values": [{"n": 7}], "total": 5}
    page = await scraper.page()
    assert (metric_value(page, UP), metric_value(page, 'app_n{target="app"}')) == (1.0, 7.0)
    assert len(logged(caplog, "json target answers again")) == 1


async def test_an_exception_while_reading_the_document_is_caught(
    app: App, scraper: Scraper, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="pillion.exporters")
    assert await scraper.value('app_total{target="app"}') == 5.0

    def broken(document: Any, rule: Any) -> Any:
        if rule.name == "app_total":
            raise KeyError("what nobody foresaw")
        return extract(document, rule)

    monkeypatch.setattr("pillion.exporters.jsonscrape.extract", broken)
    for _ in range(2):
        page = await scraper.page()
    assert metric_value(page, UP) == 0.0
    assert metric_value(page, errors("path_error")) == 2.0
    assert metric_value(page, 'app_total{target="app"}') is None  # not the last good value
    assert metric_value(page, 'app_n{target="app"}') == 1.0
    [record] = logged(caplog, "json target value problem")
    assert record.__dict__["reason"] == "path_error"
    assert "KeyError: 'what nobody foresaw'" in record.__dict__["error"]
    assert logged(caplog, "scrape hook failed") == []


async def test_an_exception_anywhere_in_the_fetch_is_caught(
    scraper: Scraper, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="pillion.exporters")
    assert await scraper.value(UP) == 1.0

    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("pillion.exporters.jsonscrape.json.loads", broken)
    for _ in range(2):
        page = await scraper.page()
    assert metric_value(page, UP) == 0.0
    assert metric_value(page, errors("error")) == 2.0
    assert metric_value(page, 'app_total{target="app"}') is None
    [record] = logged(caplog, "json target failed")
    assert (record.__dict__["reason"], record.__dict__["error"]) == ("error", "RuntimeError: a bug")


@pytest.mark.parametrize(
    ("rule", "document", "reason"),
    [
        ({"name": "m", "path": "$.x", "each": "$.total"}, {"total": 5}, "not_a_list"),
        ({"name": "m", "path": "$.n", "each": "$.values[*]", "labels": {"k": "$.k"}},
         {"values": [{"k": "a", "n": 1}, {"k": "a", "n": 2}]}, "duplicate_series"),
        ({"name": "m", "path": "$.values[*].n"}, {"values": [{"n": 1}, {"n": 2}]},
         "several_values"),
    ],
)  # fmt: skip
async def test_paths_that_do_not_fit_the_document(
    app: App, rule: dict[str, Any], document: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pillion.exporters")
    app.document = document
    scraper = await scraper_for(app, [rule])
    try:
        page = await scraper.page()
        assert metric_value(page, UP) == 0.0
        assert metric_value(page, errors(reason)) == 1.0
        assert [r.__dict__["reason"] for r in logged(caplog, "json target value problem")] == [
            reason]  # fmt: skip
    finally:
        await scraper.component.close()


async def test_a_missing_value_is_counted_and_logged_and_the_target_stays_up(
    app: App, scraper: Scraper, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pillion.exporters")
    app.document = {"values": [{"n": 1}]}
    page = await scraper.page()
    page = await scraper.page()
    assert metric_value(page, UP) == 1.0
    assert metric_value(page, errors("missing")) == 2.0
    [record] = logged(caplog, "json target value problem")
    assert (record.__dict__["metric"], record.__dict__["reason"]) == ("app_total", "missing")


async def test_a_document_nested_beyond_reason_is_not_json(
    app: App, scraper: Scraper, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pillion.exporters")
    app.raw = b"[" * 100_000 + b"]" * 100_000
    page = await scraper.page()
    assert metric_value(page, UP) == 0.0
    assert metric_value(page, errors("not_json")) == 1.0
    assert len(logged(caplog, "json target failed")) == 1


async def test_a_target_fetched_on_an_interval_keeps_being_fetched_after_a_problem(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}

    def flaky(document: Any, rule: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("once")
        return extract(document, rule)

    monkeypatch.setattr("pillion.exporters.jsonscrape.extract", flaky)
    scraper = await scraper_for(app, [{"name": "app_total", "path": "$.total"}], interval="50ms")
    try:
        await async_wait_until(lambda: calls["n"] >= 3)
        page = scraper.metrics.exposition(None)[0]
        assert metric_value(page, errors("path_error")) == 1.0
        assert metric_value(page, UP) == 1.0
        assert metric_value(page, 'app_total{target="app"}') == 5.0
    finally:
        await scraper.component.close()
