"""The app's own ``/metrics``, merged into Pillion's (``exporters.merge_app``).

Before each scrape the app's exposition is fetched and parsed. Its families are
served with ``prefix`` before their names and ``labels`` added; a name that
would collide with one of Pillion's (``pillion_*``, or a name an exporter
defines) always gets ``app_`` in front, so the page never has a duplicate
``# TYPE``. When the app is down or its page does not parse, the app's part is
left out of that scrape and counted; Pillion's own metrics are served as ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator, Set

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from pillion.config.exporters import MergeAppConfig
from pillion.config.redaction import redact_in
from pillion.exporters.scraping import ScrapingComponent
from pillion.telemetry import Metrics

__all__ = ["AppMetricsComponent", "merged_families"]

log = logging.getLogger("pillion.exporters")

COLLISION_PREFIX = "app_"
MAX_BODY = 16 * 1024 * 1024  # a larger /metrics page is left out (too_large)


class AppMetricsFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "pillion_exporter_app_up",
            "1 when the app's last /metrics answer was merged, else 0.",
            registry=registry,
        )
        self.errors = Counter(
            "pillion_exporter_app_errors",
            "The app's /metrics left out of a scrape, by reason (unreachable, timeout, "
            "status, malformed, too_large).",
            ["reason"],
            registry=registry,
        )
        self.duration = Gauge(
            "pillion_exporter_app_scrape_duration_seconds",
            "How long the last fetch of the app's /metrics took.",
            registry=registry,
        )


def merged_families(
    text: str, prefix: str, labels: dict[str, str], reserved: Set[str]
) -> list[Metric]:
    """The app's families, renamed and labelled (``ValueError`` when it does not
    parse). No I/O."""
    families = []
    for family in text_string_to_metric_families(text):
        if not family.samples:
            continue  # declared, never written
        name = prefix + family.name
        if name.startswith("pillion_") or name in reserved:
            name = COLLISION_PREFIX + name
        documentation = family.documentation or "From the app's /metrics."
        renamed = Metric(name, documentation, family.type, family.unit)
        for sample in family.samples:
            suffix = sample.name[len(family.name) :]
            renamed.samples.append(
                Sample(
                    name + suffix,
                    {**sample.labels, **labels},
                    sample.value,
                    sample.timestamp,
                    sample.exemplar,
                )
            )
        families.append(renamed)
    return families


class _Collector:
    def __init__(self) -> None:
        self.families: list[Metric] = []

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self.families


class AppMetricsComponent(ScrapingComponent):
    def __init__(
        self, config: MergeAppConfig, metrics: Metrics, *, reserved: Iterable[str]
    ) -> None:
        """``reserved``: the metric names the other exporters define, which an app
        metric never takes (``ExportersConfig.declared_metric_names()``)."""
        self.app_collector = _Collector()
        super().__init__("app-metrics", metrics, self.app_collector)
        self.config = config
        self.families = metrics.family("app-metrics", AppMetricsFamilies)
        self.reserved = frozenset(reserved)
        self._problem = ""

    async def before_scrape(self) -> None:
        assert self.session is not None
        config = self.config
        started = time.perf_counter()
        reason = problem = ""
        families: list[Metric] = []
        try:
            async with asyncio.timeout(config.timeout), self.session.get(config.url) as answer:
                raw = await answer.content.read(MAX_BODY + 1)
                text = raw.decode("utf-8", "replace")
                if len(raw) > MAX_BODY:
                    reason, problem = "too_large", f"its page is over {MAX_BODY} bytes"
                elif answer.status != 200:
                    reason, problem = "status", f"answered {answer.status}"
                else:
                    try:
                        families = merged_families(text, config.prefix, config.labels,
                                                   self.reserved)  # fmt: skip
                    except ValueError as exc:
                        reason, problem = "malformed", f"its metrics do not parse: {exc}"
        except TimeoutError:
            reason, problem = "timeout", f"no answer in {config.timeout:g}s"
        except (aiohttp.ClientError, OSError) as exc:
            reason, problem = "unreachable", redact_in(f"{type(exc).__name__}: {exc}", config.url)
        self.families.duration.set(time.perf_counter() - started)
        self.app_collector.families = families
        self.families.up.set(0 if reason else 1)
        if reason:
            self.families.errors.labels(reason).inc()
            if problem != self._problem:
                log.warning("the app's metrics are left out", extra={"error": problem[:300]})
        self._problem = problem
