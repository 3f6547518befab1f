"""The StatsD server's own metric families, shared by the components a reload builds."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from pillion.exporters.statsd_exposition import StoreCollector
from pillion.exporters.statsd_store import SeriesStore

__all__ = ["DROP_REASONS", "StatsdFamilies"]

DROP_REASONS = (
    "malformed",  # not name:value|type, an unknown type, a value that is not a number
    "sample_rate",  # a rate outside (0, 1], or given twice
    "invalid_utf8",  # a line that is not UTF-8 (the whole line)
    "mixed_tags",  # DogStatsD tags and tags in the name on one line
    "too_large",  # a UDP packet or TCP line longer than max_packet_size
    "truncated",  # a TCP connection closed in the middle of a line
    "label",  # a tag left out (no value, or no usable label name); the sample is kept
    "mapping",  # a rule with `action: drop`
    "type_conflict",
    "reserved",
    "cardinality",
    "too_many_series",
    "too_many_metrics",
)


class StatsdFamilies:
    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        # the collectors of started components, newest last: only it is served
        self.live: list[StoreCollector] = []
        # Registered first, so that its expiry (at each scrape) is done before the
        # counters and the stores are collected in the same scrape.
        self.series = Gauge(
            "pillion_statsd_series",
            "StatsD series held (after removing those idle for the ttl).",
            registry=registry,
        )
        self.series.set_function(self._sample_series)
        self.expired = Counter(
            "pillion_statsd_expired",
            "StatsD series removed after no sample for the ttl.",
            registry=registry,
        )
        self.packets = Counter(
            "pillion_statsd_packets",
            "StatsD UDP packets and TCP lines received, by transport.",
            ["transport"],
            registry=registry,
        )
        self.samples = Counter(
            "pillion_statsd_samples",
            "StatsD samples parsed (well-formed; some may still be dropped, see "
            "pillion_statsd_dropped_total).",
            registry=registry,
        )
        self.dropped = Counter(
            "pillion_statsd_dropped",
            "StatsD samples not recorded, by reason (malformed, sample_rate, invalid_utf8, "
            "mixed_tags, too_large, truncated, mapping, type_conflict, reserved, cardinality, "
            "too_many_series, too_many_metrics); reason=label counts tags left out of kept "
            "samples. See docs/statsd.md.",
            ["reason"],
            registry=registry,
        )
        for transport in ("udp", "tcp"):
            self.packets.labels(transport)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)

    def exposed(self) -> SeriesStore | None:
        return self.live[-1].store if self.live else None

    def is_exposed(self, collector: StoreCollector) -> bool:
        return bool(self.live) and self.live[-1] is collector

    def expire(self, store: SeriesStore) -> None:
        removed = store.expire(self.clock())
        if removed:
            self.expired.inc(removed)

    def _sample_series(self) -> float:
        store = self.exposed()
        if store is None:
            return 0.0
        self.expire(store)
        return float(store.series_count)
