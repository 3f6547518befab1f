"""Metrics from log lines (``exporters.from_logs``): the mtail / grok_exporter use.

Each record of the input (after its parser and filters) is searched with each
rule's regex; a match counts (counter), sets (gauge) or observes (histogram),
with labels from named groups. A rule keeps at most ``max_series_per_metric``
label sets; records that would add more are counted as dropped, so a label
fed by free text cannot grow memory without bound. A value group that is not a
number is counted too, and the record skipped for that rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pillion.config.exporters import FromLogsConfig, FromLogsMetricConfig
from pillion.telemetry import Metrics

__all__ = ["LogMetrics", "LogMetricsFamilies"]


class LogMetricsFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter(
            "pillion_logs_metric_dropped",
            "Matches of a from_logs metric not counted, by reason (cardinality: its "
            "series cap; not_a_number: the value group).",
            ["metric", "reason"],
            registry=registry,
        )


class _Rule:
    def __init__(self, config: FromLogsMetricConfig, metrics: Metrics, cap: int) -> None:
        self.config = config
        self.regex = re.compile(config.regex)
        self.cap = cap
        self.seen: set[tuple[str, ...]] = set()
        key = f"from_logs:{config.name}:{config.type}:{','.join(config.labels)}"
        help_text = config.help or f"Records matching {config.regex}"

        def create(registry: CollectorRegistry) -> Counter | Gauge | Histogram:
            if config.type == "counter":
                return Counter(config.name, help_text, config.labels, registry=registry)
            if config.type == "gauge":
                return Gauge(config.name, help_text, config.labels, registry=registry)
            if config.buckets:
                return Histogram(config.name, help_text, config.labels, registry=registry,
                                 buckets=config.buckets)  # fmt: skip
            return Histogram(config.name, help_text, config.labels, registry=registry)

        self.metric = metrics.family(key, create)


class LogMetrics:
    def __init__(self, config: FromLogsConfig, metrics: Metrics) -> None:
        self.rules = [_Rule(rule, metrics, config.max_series_per_metric)
                      for rule in config.metrics]  # fmt: skip
        self.dropped = metrics.family("logs-metrics", LogMetricsFamilies).dropped

    def observe(self, message: bytes, fields: dict[str, Any] | None) -> None:
        _ = fields
        text = message.decode("utf-8", "replace")
        for rule in self.rules:
            match = rule.regex.search(text)
            if match is None:
                continue
            config = rule.config
            labels = tuple(match.group(name) or "" for name in config.labels)
            if labels not in rule.seen:
                if len(rule.seen) >= rule.cap:
                    self.dropped.labels(config.name, "cardinality").inc()
                    continue
                rule.seen.add(labels)
            value = 1.0
            if config.value is not None:
                try:
                    value = float(match.group(config.value) or "")
                except ValueError:
                    self.dropped.labels(config.name, "not_a_number").inc()
                    continue
            child: Any = rule.metric.labels(*labels) if labels else rule.metric
            if config.type == "counter":
                if value >= 0:
                    child.inc(value)
            elif config.type == "gauge":
                child.set(value)
            else:
                child.observe(value)


def tap_for(
    configs: list[FromLogsConfig], input_name: str, metrics: Metrics
) -> Callable[[bytes, dict[str, Any] | None], None] | None:
    """The observer of ``input_name``'s records, or None when no rule reads it."""
    taps = [LogMetrics(c, metrics) for c in configs if c.input == input_name]
    if not taps:
        return None
    if len(taps) == 1:
        return taps[0].observe

    def observe(message: bytes, fields: dict[str, Any] | None) -> None:
        for tap in taps:
            tap.observe(message, fields)

    return observe
