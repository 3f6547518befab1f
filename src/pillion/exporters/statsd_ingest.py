"""StatsD packets into the series store: parse, map, record, count. No I/O.

This is the hot path. Per packet it decodes once and splits the lines; a line
with one value is then a dict lookup: the line without its value (name with
tags, type, rate, tags) is the key of a bounded cache of routes, each holding
what that shape resolved to: the type, rate and series to update (or the
reason it is dropped), the scale, and how many tags were left out. Only the
value is read per line. A line of another shape (several values, a timestamp,
which would make every line a new shape) is read whole by ``split_packet``, and
its samples resolved through a second cache, by ``(name with tags, type,
dogstatsd tags)``. Tags are parsed, rules run and label sets sorted only on a
miss of that one. Both caches are emptied when the store removes anything
(its ``generation`` moved), when full, and on a reconfiguration. The counters
are bound once; the packets, samples and drops
are tallied and added to them once per turn of the event loop.
"""

from __future__ import annotations

import math
from collections import Counter

from pillion.config.exporters import StatsdConfig
from pillion.exporters.statsd_mapping import Mapper
from pillion.exporters.statsd_metrics import DROP_REASONS, StatsdFamilies
from pillion.exporters.statsd_parse import (
    RawSample,
    decode_packet,
    observations,
    parse_name,
    split_packet,
    suffix_sample,
)
from pillion.exporters.statsd_store import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    SET,
    SUMMARY,
    CounterSeries,
    GaugeSeries,
    Series,
    SeriesStore,
    SetSeries,
    Window,
)
from pillion.telemetry.per_turn import PerTurn

__all__ = ["StatsdIngest"]

_WORDS = {"c": "counter", "g": "gauge", "s": "set", "ms": "timer", "h": "histogram",
          "d": "distribution"}  # fmt: skip


class Target:
    """What ``(name with tags, type, dogstatsd tags)`` resolves to: the series to
    update, or why the sample is dropped (``refused``)."""

    __slots__ = ("left_out", "refused", "scale", "series")

    def __init__(self, series: Series | None, refused: str, scale: float, left_out: int) -> None:
        self.series = series
        self.refused = refused
        self.scale = scale
        self.left_out = left_out  # tags dropped, counted per sample (reason="label")


class Route:
    """What a line's shape (the line without its value) resolves to: a problem
    of the line itself (``problem``), or its type, rate and target. The target
    is looked for once a value was read: a sample with an unreadable value
    creates no series."""

    __slots__ = ("head", "kind", "problem", "rate", "tags", "target", "weight")

    def __init__(self, problem: str, head: str, kind: str, rate: float, tags: str) -> None:
        self.problem = problem
        self.head = head
        self.kind = kind
        self.rate = rate
        self.tags = tags
        self.weight = observations(rate)
        self.target: Target | None = None


class StatsdIngest:
    def __init__(
        self,
        config: StatsdConfig,
        store: SeriesStore,
        families: StatsdFamilies,
        cache_size: int = 20_000,
    ) -> None:
        """``cache_size``: entries of each cache; 0 reads every line whole (slow: the
        tests' reference)."""
        self.store = store
        self.cache_size = cache_size
        self._udp = families.packets.labels("udp")
        self._tcp = families.packets.labels("tcp")
        self._samples = families.samples
        self._dropped = {reason: families.dropped.labels(reason) for reason in DROP_REASONS}
        # tallies since the last flush, added to the families once per turn of the loop
        self._drops: Counter[str] = Counter()
        self._udp_packets = 0
        self._tcp_lines = 0
        self._parsed = 0
        # a busy loop reads many packets per turn (libuv reads up to 32 datagrams
        # per wake-up): the counters' locks are paid once for all of them
        self._flush = PerTurn(self.flush)
        self._raw: list[RawSample] = []
        self._routes: dict[str, Route] = {}
        self._targets: dict[tuple[str, str, str], Target] = {}
        self._generation = store.generation
        self.configure(config)

    def configure(self, config: StatsdConfig) -> None:
        """Take new rules and defaults (the store's limits are the caller's)."""
        self.config = config
        rules = config.rules()
        self.mapper = Mapper(rules)
        self.max_packet_size = config.max_packet_size
        self._observer = rules.observer
        self._buckets = rules.buckets
        summary = rules.summary
        self._window: Window = (summary.quantiles, summary.max_age, summary.age_buckets,
                                summary.buf_cap)  # fmt: skip
        self._routes.clear()
        self._targets.clear()

    def packet(self, data: bytes, now: float) -> None:
        """One UDP datagram."""
        self._udp_packets += 1
        if len(data) > self.max_packet_size:
            self._drops["too_large"] += 1
            self._flush.request()
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # rare: keep the lines that are UTF-8
            text = decode_packet(data, self._drops)
        self._ingest(text, now)

    def lines(self, data: bytes, now: float) -> None:
        """Complete TCP lines, ``\\n`` between them (none after the last)."""
        self._tcp_lines += data.count(b"\n") + 1
        if len(data) > self.max_packet_size:
            kept = [line for line in data.split(b"\n") if len(line) <= self.max_packet_size]
            too_large = data.count(b"\n") + 1 - len(kept)
            if too_large:
                self._drops["too_large"] += too_large
            data = b"\n".join(kept)
        self._ingest(decode_packet(data, self._drops), now)

    def dropped(self, reason: str, count: int = 1) -> None:
        """A drop the transport saw (a line too long, a line cut short)."""
        self._drops[reason] += count
        self._flush.request()

    def flush(self) -> None:
        """Add the tallies to the families."""
        if self._udp_packets:
            self._udp.inc(self._udp_packets)
            self._udp_packets = 0
        if self._tcp_lines:
            self._tcp.inc(self._tcp_lines)
            self._tcp_lines = 0
        if self._parsed:
            self._samples.inc(self._parsed)
            self._parsed = 0
        drops = self._drops
        if drops:
            for reason, count in drops.items():
                self._dropped[reason].inc(count)
            drops.clear()

    def _ingest(self, text: str, now: float) -> None:
        if self.store.generation != self._generation:
            # series were removed: do not hand them out again
            self._routes.clear()
            self._targets.clear()
            self._generation = self.store.generation
        parsed, start, size = 0, 0, len(text)
        while start < size:  # line by line, without a string for each line
            end = text.find("\n", start)
            if end == -1:
                end = size
            # printable ASCII at both ends: nothing to strip
            if 32 < ord(text[start]) < 127 and 32 < ord(text[end - 1]) < 127:
                parsed += self._line(text, start, end, now)
            else:
                line = text[start:end].strip()
                if line:
                    parsed += self._line(line, 0, len(line), now)
            start = end + 1
        self._parsed += parsed
        self._flush.request()

    def _line(self, text: str, start: int, end: int, now: float) -> int:
        """The line ``text[start:end]``, stripped; how many samples were parsed."""
        colon = text.find(":", start, end)
        bar = text.find("|", colon + 1, end) if colon > start else -1
        # one value, not empty, without `:` (several values, or a set's odd member)
        if bar > colon + 1 and text.find(":", colon + 1, bar) == -1:
            key = text[start : colon + 1] + text[bar:end]  # the line without its value
            route = self._routes.get(key)
            if route is None:
                route = self._route(text[start:colon], text[bar:end], key)
            if route is not None:
                if route.problem:
                    self._drops[route.problem] += 1
                    return 0
                return 1 if self._record(route, text[colon + 1 : bar], now) else 0
        return self._slow(text[start:end], now)

    def _record(self, route: Route, text: str, now: float) -> bool:
        """One sample of ``route`` whose value is ``text``; whether it was parsed
        (a well-formed sample may still be dropped, and is counted)."""
        kind = route.kind
        if kind == "s":
            value = 0.0
        else:
            try:
                value = float(text)
            except ValueError:
                self._drops["malformed"] += 1
                return False
            if math.isinf(value) or math.isnan(value):
                self._drops["malformed"] += 1
                return False
            if kind == "c":
                if value < 0:
                    self._drops["malformed"] += 1
                    return False
                value = value / route.rate
            elif kind == "ms":
                value = value / 1000.0
        target = route.target
        if target is None:
            target = route.target = self._target(route.head, kind, route.tags, now)
        series = target.series
        if series is None:
            self._drops[target.refused] += 1
            return True
        if target.left_out:
            self._drops["label"] += target.left_out
        if isinstance(series, CounterSeries):
            series.value += value * target.scale
        elif isinstance(series, GaugeSeries):
            if text[0] in "+-":
                series.value += value * target.scale
            else:
                series.value = value * target.scale
        elif isinstance(series, SetSeries):
            if not series.add(text, now):
                self._drops["cardinality"] += 1
                return True
        else:
            series.observe(value * target.scale, route.weight)
        series.last = now
        return True

    def _route(self, head: str, suffix: str, key: str) -> Route | None:
        """The route of a line shape not seen yet, cached when it can be: not
        with a timestamp (a new shape every second) nor with several values."""
        if "|T" in suffix or (":" in suffix and "|#" not in suffix) or not self.cache_size:
            return None
        found = suffix_sample(suffix)
        if isinstance(found, str):
            route = Route(found, head, "", 1.0, "")
        else:
            kind, rate, tags = found
            route = Route("", head, kind, rate, tags)
        if len(self._routes) >= self.cache_size:
            self._routes.clear()
        self._routes[key] = route
        return route

    def _slow(self, line: str, now: float) -> int:
        """A line the routes do not cover, read whole; how many samples were parsed."""
        raw = self._raw
        split_packet(line, raw, self._drops)
        parsed = 0
        for head, text, kind, rate, tags in raw:
            if self._record(Route("", head, kind, rate, tags), text, now):
                parsed += 1
        raw.clear()
        return parsed

    def _target(self, head: str, kind: str, tags: str, now: float) -> Target:
        key = (head, kind, tags)
        target = self._targets.get(key)
        if target is not None:
            return target
        name, labels, left_out, problem = parse_name(head, tags)
        if problem:
            target = Target(None, problem, 1.0, 0)
        else:
            target = self._series(name, kind, labels, left_out, now)
        if len(self._targets) >= self.cache_size:
            self._targets.clear()
        self._targets[key] = target
        return target

    def _series(
        self, name: str, kind: str, labels: dict[str, str], left_out: int, now: float
    ) -> Target:
        if not name:
            return Target(None, "malformed", 1.0, 0)
        mapped = self.mapper.map(name, kind)
        if mapped is None:
            return Target(None, "mapping", 1.0, 0)
        if not mapped.name:
            return Target(None, "malformed", 1.0, 0)
        if mapped.labels:
            if mapped.honor_labels:  # the sample's own tags win
                for key, value in mapped.labels.items():
                    if key not in labels:
                        labels[key] = value
            else:
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
        window = self._window
        if mapped.summary is not None:
            summary = mapped.summary
            window = (summary.quantiles, summary.max_age, summary.age_buckets, summary.buf_cap)
        series = self.store.series(
            mapped.name,
            metric_kind,
            labels,
            now,
            help=mapped.help or f"StatsD {_WORDS[kind]} {name}.",
            buckets=mapped.buckets or self._buckets,
            ttl=mapped.ttl if mapped.ttl is not None else -1.0,
            window=window,
        )
        if isinstance(series, str):
            return Target(None, series, 1.0, 0)
        return Target(series, "", mapped.scale, left_out)
