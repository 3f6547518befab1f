"""StatsD packets into the series store: parse, map, record, count. No I/O.

This is the hot path. Per packet it decodes once, splits every line with str
methods, and per sample looks up ``(name with tags, type, dogstatsd tags)`` in a
bounded cache of what it resolved to before: the series to update (or the
reason it is dropped), the scale, and how many tags were left out. Tags are
parsed, rules run and label sets sorted only on a miss. The cache is emptied
when the store removes anything (its ``generation`` moved), when it is full,
and on a reconfiguration. The counters are bound once and incremented once
per packet.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pillion.config.exporters import StatsdConfig
from pillion.exporters.statsd_mapping import Mapper
from pillion.exporters.statsd_metrics import DROP_REASONS, StatsdFamilies
from pillion.exporters.statsd_parse import (
    RawSample,
    decode_packet,
    observations,
    parse_name,
    sample_value,
    split_packet,
)
from pillion.exporters.statsd_store import COUNTER, GAUGE, HISTOGRAM, SET, SUMMARY, SeriesStore

__all__ = ["StatsdIngest"]

_WORDS = {"c": "counter", "g": "gauge", "s": "set", "ms": "timer", "h": "histogram",
          "d": "distribution"}  # fmt: skip

Resolved = tuple[Any, float, int]
"""``(series or drop reason, scale, tags left out)``. The series is typed ``Any``:
the hot loop dispatches on the StatsD type it already has in hand instead of
checking the series' class again."""


class StatsdIngest:
    def __init__(
        self,
        config: StatsdConfig,
        store: SeriesStore,
        families: StatsdFamilies,
        cache_size: int = 20_000,
    ) -> None:
        self.store = store
        self.cache_size = cache_size
        self._udp = families.packets.labels("udp")
        self._tcp = families.packets.labels("tcp")
        self._samples = families.samples
        self._dropped = {reason: families.dropped.labels(reason) for reason in DROP_REASONS}
        self._drops: Counter[str] = Counter()
        self._raw: list[RawSample] = []
        self._cache: dict[tuple[str, str, str], Resolved] = {}
        self._generation = store.generation
        self.configure(config)

    def configure(self, config: StatsdConfig) -> None:
        """Take new rules and defaults (the store's limits are the caller's)."""
        self.config = config
        self.mapper = Mapper(config.mappings)
        self.max_packet_size = config.max_packet_size
        self._observer = config.observer_type
        self._buckets = tuple(config.buckets)
        self._cache.clear()

    def packet(self, data: bytes, now: float) -> None:
        """One UDP datagram."""
        self._udp.inc()
        if len(data) > self.max_packet_size:
            self._dropped["too_large"].inc()
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # rare: keep the lines that are UTF-8
            text = decode_packet(data, self._drops)
        self._ingest(text, now)

    def lines(self, data: bytes, now: float) -> None:
        """Complete TCP lines, ``\\n`` between them (none after the last)."""
        self._tcp.inc(data.count(b"\n") + 1)
        if len(data) > self.max_packet_size:
            kept = [line for line in data.split(b"\n") if len(line) <= self.max_packet_size]
            too_large = data.count(b"\n") + 1 - len(kept)
            if too_large:
                self._dropped["too_large"].inc(too_large)
            data = b"\n".join(kept)
        self._ingest(decode_packet(data, self._drops), now)

    def dropped(self, reason: str, count: int = 1) -> None:
        """A drop the transport saw (a line too long, a line cut short)."""
        self._dropped[reason].inc(count)

    def _ingest(self, text: str, now: float) -> None:
        raw, drops = self._raw, self._drops
        split_packet(text, raw, drops)
        if self.store.generation != self._generation:
            self._cache.clear()  # series were removed: do not hand them out again
            self._generation = self.store.generation
        cache = self._cache
        parsed = 0
        for head, value_text, kind, rate, tags in raw:
            if kind == "s":
                value = 0.0
            else:
                found = sample_value(value_text, kind, rate)
                if found is None:
                    drops["malformed"] += 1
                    continue
                value = found
            parsed += 1
            key = (head, kind, tags)
            hit = cache.get(key)
            if hit is None:
                hit = self._resolve(key, now)
            series, scale, left_out = hit
            if series.__class__ is str:
                drops[series] += 1
                continue
            if left_out:
                drops["label"] += left_out
            if kind == "c":
                series.value += value * scale
            elif kind == "g":
                if value_text[0] in "+-":
                    series.value += value * scale
                else:
                    series.value = value * scale
            elif kind == "s":
                if not series.add(value_text, now):
                    drops["cardinality"] += 1
                    continue
            else:
                series.observe(value * scale, observations(rate))
            series.last = now
        raw.clear()
        if parsed:
            self._samples.inc(parsed)
        if drops:
            for reason, count in drops.items():
                self._dropped[reason].inc(count)
            drops.clear()

    def _resolve(self, key: tuple[str, str, str], now: float) -> Resolved:
        head, kind, tags = key
        name, labels, left_out, problem = parse_name(head, tags)
        if problem:
            resolved: Resolved = (problem, 1.0, 0)
        else:
            resolved = self._series(name, kind, labels, left_out, now)
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[key] = resolved
        return resolved

    def _series(
        self, name: str, kind: str, labels: dict[str, str], left_out: int, now: float
    ) -> Resolved:
        if not name:
            return ("malformed", 1.0, 0)
        mapped = self.mapper.map(name)
        if mapped is None:
            return ("mapping", 1.0, 0)
        if not mapped.name:
            return ("malformed", 1.0, 0)
        if mapped.labels:
            labels.update(mapped.labels)
        if kind == "c":
            metric_kind = COUNTER
        elif kind == "g":
            metric_kind = GAUGE
        elif kind == "s":
            metric_kind = SET
        else:
            metric_kind = mapped.observer or self._observer
        # `le` and `quantile` belong to the exposition of histograms and summaries
        reserved_label = {HISTOGRAM: "le", SUMMARY: "quantile"}.get(metric_kind)
        if reserved_label is not None and labels.pop(reserved_label, None) is not None:
            left_out += 1
        series = self.store.series(
            mapped.name,
            metric_kind,
            labels,
            now,
            help=mapped.help or f"StatsD {_WORDS[kind]} {name}.",
            buckets=mapped.buckets or self._buckets,
        )
        return (series, mapped.scale, left_out)
