"""The series StatsD samples build. No I/O.

A metric is a name, a type, a set of label names and its series (one per label
values). The store refuses, and names the reason for, whatever could make the
exposition wrong or memory unbounded:

* ``type_conflict``: a name already held with another type or other label
  names, or whose exposed names (``foo_total``, ``foo_bucket``...) another
  metric already uses; the first one keeps it until it expires;
* ``reserved``: a name Pillion or a configured exporter serves (``pillion_*``);
* ``cardinality``: a new series past ``max_series_per_metric`` (or a new value
  of a set past it); ``too_many_series``: past ``max_series`` in all;
  ``too_many_metrics``: a new name past ``max_metrics``.

So the page (``statsd_exposition``) never has two families of one name nor a
sample that does not fit its family. A series with no sample for ``ttl`` seconds (its
metric's own, from its mapping rule, or the store's) is removed by ``expire`` (and so
is a metric left without series, which frees its name); ``expire`` also moves the
window of the summaries that report quantiles (``statsd_quantiles``);
``generation`` changes whenever something is removed, so that caches of series
know to forget them. Times are whatever clock the caller uses (monotonic).

Each series carries its label text as the page writes it, made once when the
series is created: a scrape writes numbers only.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

from pillion.exporters.statsd_quantiles import QuantileWindow
from pillion.exporters.statsd_text import is_plain, label_text

__all__ = [
    "COUNTER",
    "GAUGE",
    "HISTOGRAM",
    "SET",
    "SUMMARY",
    "CounterSeries",
    "GaugeSeries",
    "HistogramSeries",
    "Series",
    "SeriesStore",
    "SetSeries",
    "StoredMetric",
    "SummarySeries",
    "Window",
]

COUNTER, GAUGE, HISTOGRAM, SUMMARY, SET = "counter", "gauge", "histogram", "summary", "set"
_RESERVED_PREFIX = "pillion_"


class CounterSeries:
    __slots__ = ("labels", "last", "value")

    def __init__(self, now: float, labels: str) -> None:
        self.last = now
        self.labels = labels  # `{a="x"}` as the page writes it, or ""
        self.value = 0.0


class GaugeSeries:
    __slots__ = ("labels", "last", "value")

    def __init__(self, now: float, labels: str) -> None:
        self.last = now
        self.labels = labels
        self.value = 0.0


class HistogramSeries:
    __slots__ = ("bounds", "bucket_close", "bucket_open", "count", "counts", "labels", "last",
                 "sum")  # fmt: skip

    def __init__(self, now: float, labels: str, bounds: tuple[float, ...]) -> None:
        self.last = now
        self.labels = labels
        # a bucket's labels are `bucket_open + le="..." + bucket_close`: `le` in name order
        self.bucket_open = "{"
        self.bucket_close = "} "
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last: +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, weight: int = 1) -> None:
        # bisect_left, written out (compiled, it needs no boxed float nor call): a value
        # equal to a bound belongs in that bound's bucket (le)
        bounds = self.bounds
        low, high = 0, len(bounds)
        while low < high:
            middle = (low + high) // 2
            if bounds[middle] < value:
                low = middle + 1
            else:
                high = middle
        self.counts[low] += weight
        self.sum += value * weight
        self.count += weight


Window = tuple[tuple[tuple[float, float], ...], float, int, int]
"""A summary's quantiles ((quantile, error), ascending) and their window: max_age,
age_buckets, buf_cap."""


class SummarySeries:
    __slots__ = ("count", "labels", "last", "quantile_close", "quantile_open", "sum", "window")

    def __init__(self, now: float, labels: str) -> None:
        self.last = now
        self.labels = labels
        self.sum = 0.0
        self.count = 0
        self.window: QuantileWindow | None = None  # with quantiles to report
        # a quantile's labels are `quantile_open + quantile="..." + quantile_close`
        self.quantile_open = "{"
        self.quantile_close = "} "

    def observe(self, value: float, weight: int = 1) -> None:
        self.sum += value * weight
        self.count += weight
        window = self.window
        if window is not None:
            window.add(value, weight, self.last)  # the caller sets `last` after


class SetSeries:
    __slots__ = ("labels", "last", "limit", "members")

    def __init__(self, now: float, labels: str, limit: int) -> None:
        self.last = now
        self.labels = labels
        self.limit = limit
        self.members: dict[str, float] = {}  # value -> when last seen

    def add(self, member: str, now: float) -> bool:
        """False when it is a new value and the set is full."""
        members = self.members
        if member not in members and len(members) >= self.limit:
            return False
        members[member] = now
        return True


Series = CounterSeries | GaugeSeries | HistogramSeries | SummarySeries | SetSeries


class StoredMetric:
    __slots__ = ("buckets", "exposed", "help", "kind", "label_names", "le_at", "name", "plain",
                 "quantile_at", "series", "ttl", "window")  # fmt: skip

    def __init__(self, name: str, kind: str, label_names: tuple[str, ...], help: str,
                 buckets: tuple[float, ...], exposed: tuple[str, ...], ttl: float = -1.0,
                 window: Window | None = None) -> None:  # fmt: skip
        self.name = name
        self.kind = kind
        self.label_names = label_names
        self.help = help
        self.buckets = buckets
        self.exposed = exposed
        self.ttl = ttl  # below 0: the store's
        # a summary's quantiles and their window, when it reports any
        self.window = window if kind == SUMMARY and window is not None and window[0] else None
        self.series: dict[tuple[str, ...], Series] = {}
        # names the page may write as they are (else prometheus_client writes this one)
        self.plain = all(is_plain(n) for n in (name, *exposed, *label_names))
        self.le_at = bisect.bisect_left(label_names, "le")  # where a bucket's `le` goes
        self.quantile_at = bisect.bisect_left(label_names, "quantile")


def exposed_names(kind: str, name: str) -> tuple[str, ...]:
    """The family name first, then every sample name the exposition uses for it."""
    if kind == COUNTER:
        base = name[:-6] if name.endswith("_total") else name
        return (base, base + "_total", base + "_created")
    if kind == HISTOGRAM:
        return (name, name + "_bucket", name + "_count", name + "_sum", name + "_created")
    if kind == SUMMARY:
        return (name, name + "_count", name + "_sum", name + "_created")
    return (name,)


class SeriesStore:
    def __init__(
        self,
        *,
        ttl: float,
        max_series_per_metric: int,
        max_series: int,
        max_metrics: int,
        reserved: Iterable[str] = (),
    ) -> None:
        """``ttl`` 0: series never expire. ``reserved``: family names served by
        others (their suffixed names are kept off too)."""
        self.ttl = ttl
        self.max_series_per_metric = max_series_per_metric
        self.max_series = max_series
        self.max_metrics = max_metrics
        self.metrics: dict[str, StoredMetric] = {}
        self.series_count = 0
        self.generation = 0
        self._claimed: dict[str, str] = {}  # exposed name -> metric name
        self._reserved: set[str] = set()
        self.reserve(reserved)

    def reserve(self, names: Iterable[str]) -> None:
        """Keep these family names, and the names suffixed from them, for others."""
        self._reserved = set()
        for name in names:
            for kind in (COUNTER, HISTOGRAM):
                self._reserved.update(exposed_names(kind, name))

    def series(
        self,
        name: str,
        kind: str,
        labels: Mapping[str, str],
        now: float,
        *,
        help: str = "",
        buckets: tuple[float, ...] = (),
        ttl: float = -1.0,
        window: Window | None = None,
    ) -> Series | str:
        """The series of ``name`` with ``labels`` (created if need be), or why not.
        ``ttl`` (below 0: the store's), ``buckets`` and ``window`` (a summary's
        quantiles) are the metric's, taken when it is created."""
        metric = self.metrics.get(name)
        label_names = tuple(sorted(labels))
        if metric is None:
            problem = self._room_for(name, kind)
            if problem:
                return problem
            exposed = exposed_names(kind, name)
            metric = StoredMetric(name, kind, label_names, help or f"StatsD {kind} {name}.",
                                  buckets, exposed, ttl, window)  # fmt: skip
            self.metrics[name] = metric
            for claimed in exposed:
                self._claimed[claimed] = name
        elif metric.kind != kind or metric.label_names != label_names:
            return "type_conflict"
        values = tuple(labels[label] for label in label_names)
        found = metric.series.get(values)
        if found is not None:
            return found
        if len(metric.series) >= self.max_series_per_metric:
            return "cardinality"
        if self.series_count >= self.max_series:
            return "too_many_series"
        created = self._new_series(metric, values, now)
        metric.series[values] = created
        self.series_count += 1
        return created

    def _room_for(self, name: str, kind: str) -> str:
        exposed = exposed_names(kind, name)
        if not exposed[0]:
            return "malformed"  # a counter called just `_total`
        if name.startswith(_RESERVED_PREFIX) or any(n in self._reserved for n in exposed):
            return "reserved"
        if any(n in self._claimed for n in exposed):
            return "type_conflict"
        if len(self.metrics) >= self.max_metrics:
            return "too_many_metrics"
        if self.series_count >= self.max_series:
            return "too_many_series"
        return ""

    def _new_series(self, metric: StoredMetric, values: tuple[str, ...], now: float) -> Series:
        kind, names = metric.kind, metric.label_names
        text = label_text(names, values)
        labels = "{" + text + "}" if text else ""
        if kind == COUNTER:
            return CounterSeries(now, labels)
        if kind == GAUGE:
            return GaugeSeries(now, labels)
        if kind == HISTOGRAM:
            histogram = HistogramSeries(now, labels, metric.buckets)
            at = metric.le_at
            before = label_text(names[:at], values[:at])
            after = label_text(names[at:], values[at:])
            histogram.bucket_open = "{" + before + "," if before else "{"
            histogram.bucket_close = "," + after + "} " if after else "} "
            return histogram
        if kind == SUMMARY:
            summary = SummarySeries(now, labels)
            window = metric.window
            if window is not None:
                quantiles, max_age, age_buckets, buf_cap = window
                summary.window = QuantileWindow(quantiles, max_age, age_buckets, buf_cap, now)
                at = metric.quantile_at
                before = label_text(names[:at], values[:at])
                after = label_text(names[at:], values[at:])
                summary.quantile_open = "{" + before + "," if before else "{"
                summary.quantile_close = "," + after + "} " if after else "} "
            return summary
        return SetSeries(now, labels, self.max_series_per_metric)

    def expire(self, now: float) -> int:
        """Remove the series (and set values) not updated for their ttl; how many
        series. Moves the summaries' quantile windows to ``now``."""
        removed = 0
        for metric in list(self.metrics.values()):
            ttl = metric.ttl if metric.ttl >= 0 else self.ttl
            series = metric.series
            if metric.window is not None:
                for one in series.values():
                    assert isinstance(one, SummarySeries)
                    if one.window is not None:
                        one.window.flush(now)
            if ttl <= 0:
                continue
            cutoff = now - ttl
            stale = [key for key, one in series.items() if one.last < cutoff]
            for key in stale:
                del series[key]
            removed += len(stale)
            if metric.kind == SET:
                for one in series.values():
                    assert isinstance(one, SetSeries)
                    one.members = {m: t for m, t in one.members.items() if t >= cutoff}
            if not series:
                self._forget(metric)
        if removed:
            self.series_count -= removed
            self.generation += 1
        return removed

    def shortest_ttl(self) -> float:
        """The shortest ttl above 0 of the store and its metrics (0: none)."""
        ttls = [metric.ttl for metric in self.metrics.values() if metric.ttl > 0]
        if self.ttl > 0:
            ttls.append(self.ttl)
        return min(ttls) if ttls else 0.0

    def windows(self) -> bool:
        """Whether a summary reports quantiles (its window moves with time)."""
        return any(metric.window is not None for metric in self.metrics.values())

    def _forget(self, metric: StoredMetric) -> None:
        del self.metrics[metric.name]
        for claimed in metric.exposed:
            self._claimed.pop(claimed, None)
        self.generation += 1

    def clear(self) -> None:
        for metric in list(self.metrics.values()):
            self._forget(metric)
        self.series_count = 0
