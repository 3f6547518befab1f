"""JSON scraping as a component: each target's JSON endpoint is fetched before a
scrape of ``/metrics`` (or on its ``interval``, cached) and turned into metrics.

A target that is down, slow, or answers something that is not JSON gives
``pillion_exporter_json_up{target} 0`` and a counted error, and its metrics are
absent from that scrape: stale numbers are never served as fresh ones. A value
that is not a number is counted and skipped; the rest of the target's metrics
are still served.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)

from pillion.config.exporters import JsonExporterConfig
from pillion.config.redaction import redact_in, redact_url
from pillion.exporters.jsonvalues import extract
from pillion.exporters.scraping import ScrapingComponent
from pillion.telemetry import Metrics

__all__ = ["JsonExporterComponent"]

log = logging.getLogger("pillion.exporters")

MAX_BODY = 16 * 1024 * 1024  # a larger JSON answer is refused (too_large)


class JsonFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "pillion_exporter_json_up",
            "1 when the target's last fetch gave a JSON document, else 0.",
            ["target"],
            registry=registry,
        )
        self.duration = Gauge(
            "pillion_exporter_json_scrape_duration_seconds",
            "How long the target's last fetch took.",
            ["target"],
            registry=registry,
        )
        self.errors = Counter(
            "pillion_exporter_json_errors",
            "Problems fetching a target or reading its values, by reason (unreachable, "
            "timeout, status, not_json, too_large, missing, not_a_number).",
            ["target", "reason"],
            registry=registry,
        )


class _Target:
    def __init__(self, config: JsonExporterConfig, counters: JsonFamilies) -> None:
        self.config = config
        self.counters = counters
        self.families: list[Metric] = []  # from the last good document; none when down
        self._problem = ""  # the last problem logged, so an outage is logged once

    async def fetch(self, session: aiohttp.ClientSession) -> None:
        config = self.config
        started = time.perf_counter()
        problem = reason = ""
        sent = config.request_body()
        codes = config.status_codes()
        try:
            async with (
                asyncio.timeout(config.timeout),
                session.request(
                    "GET" if sent is None else "POST",
                    config.url,
                    headers=config.request_headers(),
                    data=None if sent is None else sent.encode(),
                    allow_redirects=config.follow_redirects(),
                ) as answer,
            ):
                body = await answer.content.read(MAX_BODY + 1)
                if len(body) > MAX_BODY:
                    reason, problem = "too_large", f"the answer is over {MAX_BODY} bytes"
                elif not _accepted(answer.status, codes):
                    reason, problem = "status", f"answered {answer.status}"
                else:
                    try:
                        document = json.loads(body)
                    except ValueError:
                        reason, problem = "not_json", "the answer is not JSON"
                    else:
                        self.families = list(self._families(document))
        except TimeoutError:
            reason, problem = "timeout", f"no answer in {config.timeout:g}s"
        except (aiohttp.ClientError, OSError) as exc:
            reason, problem = "unreachable", redact_in(f"{type(exc).__name__}: {exc}", config.url)
        self.counters.duration.labels(config.name).set(time.perf_counter() - started)
        if reason:
            self.families = []
            self.counters.errors.labels(config.name, reason).inc()
            if problem != self._problem:
                log.warning("json target failed", extra={"target": config.name,
                                                         "error": problem})  # fmt: skip
        elif self._problem:
            log.info("json target answers again", extra={"target": config.name})
        self._problem = problem
        self.counters.up.labels(config.name).set(0 if reason else 1)

    def _families(self, document: Any) -> Iterator[Metric]:
        for rule in self.config.all_metrics():
            found = extract(document, rule)
            for reason, count in found.problems.items():
                self.counters.errors.labels(self.config.name, reason).inc(count)
            labels = [*rule.labels, "target"]
            family: GaugeMetricFamily | CounterMetricFamily | UnknownMetricFamily
            source = rule.path or "a fixed value"
            help_text = rule.help or f"{source} of {redact_url(self.config.url)}"
            if rule.type == "counter":
                family = CounterMetricFamily(rule.name, help_text, labels=labels)
            elif rule.type == "untyped":
                family = UnknownMetricFamily(rule.name, help_text, labels=labels)
            else:
                family = GaugeMetricFamily(rule.name, help_text, labels=labels)
            for values, value in found.samples:
                family.add_metric([*values, self.config.name], value)
            if family.samples:  # as json_exporter: no series, no family
                yield family


def _accepted(status: int, codes: tuple[int, ...]) -> bool:
    """Whether ``status`` is an answer: one of ``codes``, or any 2xx without them (as
    json_exporter's ``valid_status_codes``)."""
    return status in codes if codes else 200 <= status < 300


class _Collector:
    """Yields the targets' metrics at scrape time (``describe`` is empty, so that a
    replacement built by a reload registers beside this one until it leaves)."""

    def __init__(self, targets: list[_Target]) -> None:
        self.targets = targets

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        # targets may share a metric (one json_exporter module for several apps): one
        # family per name, the samples of every target in it (the config checked the
        # types agree)
        merged: dict[str, Metric] = {}
        for target in self.targets:
            for family in target.families:
                first = merged.get(family.name)
                if first is None:
                    merged[family.name] = copy.copy(family)
                    merged[family.name].samples = list(family.samples)
                elif first.type == family.type:
                    first.samples.extend(family.samples)
        yield from merged.values()


class JsonExporterComponent(ScrapingComponent):
    def __init__(self, config: Sequence[JsonExporterConfig], metrics: Metrics) -> None:
        """``config``: the ``exporters.json`` targets."""
        families = metrics.family("json-exporter", JsonFamilies)
        self.targets = [_Target(target, families) for target in config]
        super().__init__("json-exporter", metrics, _Collector(self.targets))

    def start_tasks(self) -> None:
        for target in self.targets:
            if target.config.interval is not None:
                self.tasks.append(asyncio.create_task(self._every(target)))

    async def before_scrape(self) -> None:
        assert self.session is not None
        await asyncio.gather(*(target.fetch(self.session) for target in self.targets
                               if target.config.interval is None))  # fmt: skip

    async def _every(self, target: _Target) -> None:
        assert self.session is not None
        assert target.config.interval is not None
        while True:
            await target.fetch(self.session)
            await asyncio.sleep(target.config.interval)
