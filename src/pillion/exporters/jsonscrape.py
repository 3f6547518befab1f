"""JSON scraping as a component: each target's JSON endpoint is fetched before a
scrape of ``/metrics`` (or on its ``interval``, cached) and turned into metrics.

A target that is down, slow, or answers something that is not JSON gives
``pillion_exporter_json_up{target} 0`` and a counted error, and its metrics are
absent from that scrape: stale numbers are never served as fresh ones. So does a
rule whose path does not fit the document (it matched several values where one is
needed, its ``each`` is no list, two elements gave the same labels, or evaluating it
raised): the other rules' metrics are served. A value that is missing or not a
number is counted and skipped; the target stays up. Each problem is logged once,
when it appears, and its end once.
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
from pillion.exporters.jsonvalues import PATH_PROBLEMS, extract
from pillion.exporters.scraping import ScrapingComponent
from pillion.telemetry import Metrics

__all__ = ["JsonExporterComponent"]

log = logging.getLogger("pillion.exporters")

MAX_BODY = 16 * 1024 * 1024  # a larger JSON answer is refused (too_large)


class JsonFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "pillion_exporter_json_up",
            "1 when the target's last fetch gave a JSON document that every rule's path "
            "fits, else 0.",
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
            "Problems fetching a target or reading its values, by reason: the fetch "
            "(unreachable, timeout, status, not_json, too_large, error), a path that does "
            "not fit the document (several_values, not_a_list, duplicate_series, "
            "path_error), a value (missing, not_a_number).",
            ["target", "reason"],
            registry=registry,
        )


class _Target:
    def __init__(self, config: JsonExporterConfig, counters: JsonFamilies) -> None:
        self.config = config
        self.counters = counters
        self.families: list[Metric] = []  # from the last good document; none when down
        # the problems of the last fetch, each logged when it first appears: an outage,
        # or a path that does not fit the document, is one log line, not one per scrape
        self._problems: dict[str, str] = {}

    async def fetch(self, session: aiohttp.ClientSession) -> None:
        """Fetch the document and make the families of the next scrape; never raises.
        Every problem is counted by reason and logged once while it lasts; a failed
        fetch, or a rule whose path does not fit the document, turns ``up`` to 0."""
        config = self.config
        started = time.perf_counter()
        problems: dict[str, tuple[str, str]] = {}  # identity -> (reason, what happened)
        families: list[Metric] = []
        try:
            families = await self._fetch(session, problems)
        except Exception as exc:  # a bug, or a document nobody foresaw: never a stale page
            problem = redact_in(f"{type(exc).__name__}: {exc}", config.url)
            problems["fetch"] = ("error", problem)
            log.debug("json target fetch raised", exc_info=True, extra={"target": config.name})
        self.counters.duration.labels(config.name).set(time.perf_counter() - started)
        failed = False
        for reason, _ in problems.values():
            self.counters.errors.labels(config.name, reason).inc()
            failed = failed or reason in _DOWN
        self.families = [] if "fetch" in problems else families
        self._log(problems)
        self.counters.up.labels(config.name).set(0 if failed else 1)

    async def _fetch(
        self, session: aiohttp.ClientSession, problems: dict[str, tuple[str, str]]
    ) -> list[Metric]:
        config = self.config
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
                    problems["fetch"] = ("too_large", f"the answer is over {MAX_BODY} bytes")
                    return []
                if not _accepted(answer.status, codes):
                    problems["fetch"] = ("status", f"answered {answer.status}")
                    return []
        except TimeoutError:
            problems["fetch"] = ("timeout", f"no answer in {config.timeout:g}s")
            return []
        except (aiohttp.ClientError, OSError) as exc:
            text = redact_in(f"{type(exc).__name__}: {exc}", config.url)
            problems["fetch"] = ("unreachable", text)
            return []
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested beyond reason
            problems["fetch"] = ("not_json", "the answer is not JSON")
            return []
        return list(self._families(document, problems))

    def _families(self, document: Any, problems: dict[str, tuple[str, str]]) -> Iterator[Metric]:
        for rule in self.config.all_metrics():
            try:
                found = extract(document, rule)
            except Exception as exc:  # a path that fails on this document: the others stand
                detail = f"path {rule.path or rule.each}: {type(exc).__name__}: {exc}"
                problems[f"{rule.name} path_error"] = ("path_error", detail)
                continue
            for reason, count in found.problems.items():
                detail = found.details.get(reason, reason)
                problems[f"{rule.name} {reason}"] = (reason, detail)
                if count > 1:  # counted once per sample, as before
                    self.counters.errors.labels(self.config.name, reason).inc(count - 1)
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

    def _log(self, problems: dict[str, tuple[str, str]]) -> None:
        """A line per problem that was not there at the last fetch; one when all are
        gone."""
        name = self.config.name
        for identity, (reason, detail) in problems.items():
            if self._problems.get(identity) == reason:
                continue
            if identity == "fetch":
                log.warning("json target failed", extra={"target": name, "reason": reason,
                                                         "error": detail})  # fmt: skip
            else:
                metric = identity.rsplit(" ", 1)[0]
                extra = {"target": name, "metric": metric, "reason": reason, "error": detail,
                         "target_down": reason in _DOWN}  # fmt: skip
                log.warning("json target value problem", extra=extra)
        if self._problems and not problems:
            log.info("json target answers again", extra={"target": name})
        self._problems = {identity: reason for identity, (reason, _) in problems.items()}


_DOWN = frozenset({"unreachable", "timeout", "status", "not_json", "too_large", "error"}) | (
    PATH_PROBLEMS
)
"""Reasons that turn a target's ``up`` to 0: no document, or a path that does not fit
it. A value absent from a good document (``missing``) or not a number
(``not_a_number``) is counted and logged, and the target stays up."""


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
                               if target.config.interval is None),
                             return_exceptions=True)  # fmt: skip

    async def _every(self, target: _Target) -> None:
        assert self.session is not None
        assert target.config.interval is not None
        while True:
            await target.fetch(self.session)
            await asyncio.sleep(target.config.interval)
