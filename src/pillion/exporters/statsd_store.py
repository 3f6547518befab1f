"""The series StatsD samples build, and the collector that serves them. No I/O.

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

So ``collect`` never meets two families of one name nor a sample that does not
fit its family. A series with no sample for ``ttl`` seconds is removed by
``expire`` (and so is a metric left without series, which frees its name);
``generation`` changes whenever something is removed, so that caches of series
know to forget them. Times are whatever clock the caller uses (monotonic).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = [
    "COUNTER",
    "GAUGE",
    "HISTOGRAM",
    "SET",
    "SUMMARY",
    "CounterSeries",
    "GaugeSeries",
    "HistogramSeries",
    "SeriesStore",
    "SetSeries",
    "StoreCollector",
    "SummarySeries",
]

log = logging.getLogger("pillion.exporters")

COUNTER, GAUGE, HISTOGRAM, SUMMARY, SET = "counter", "gauge", "histogram", "summary", "set"
_RESERVED_PREFIX = "pillion_"


class CounterSeries:
    __slots__ = ("last", "value")

    def __init__(self, now: float) -> None:
        self.last = now
        self.value = 0.0


class GaugeSeries:
    __slots__ = ("last", "value")

    def __init__(self, now: float) -> None:
        self.last = now
        self.value = 0.0


class HistogramSeries:
    __slots__ = ("bounds", "count", "counts", "last", "sum")

    def __init__(self, now: float, bounds: tuple[float, ...]) -> None:
        self.last = now
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last: +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, weight: int = 1) -> None:
        # bisect_left: a value equal to a bound belongs in that bound's bucket (le)
        self.counts[bisect.bisect_left(self.bounds, value)] += weight
        self.sum += value * weight
        self.count += weight


class SummarySeries:
    __slots__ = ("count", "last", "sum")

    def __init__(self, now: float) -> None:
        self.last = now
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, weight: int = 1) -> None:
        self.sum += value * weight
        self.count += weight


class SetSeries:
    __slots__ = ("last", "limit", "members")

    def __init__(self, now: float, limit: int) -> None:
        self.last = now
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


class _Metric:
    __slots__ = ("buckets", "exposed", "help", "kind", "label_names", "name", "series")

    def __init__(self, name: str, kind: str, label_names: tuple[str, ...], help: str,
                 buckets: tuple[float, ...], exposed: tuple[str, ...]) -> None:  # fmt: skip
        self.name = name
        self.kind = kind
        self.label_names = label_names
        self.help = help
        self.buckets = buckets
        self.exposed = exposed
        self.series: dict[tuple[str, ...], Series] = {}


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
        self.metrics: dict[str, _Metric] = {}
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
    ) -> Series | str:
        """The series of ``name`` with ``labels`` (created if need be), or why not."""
        metric = self.metrics.get(name)
        label_names = tuple(sorted(labels))
        if metric is None:
            problem = self._room_for(name, kind)
            if problem:
                return problem
            exposed = exposed_names(kind, name)
            metric = _Metric(name, kind, label_names, help or f"StatsD {kind} {name}.",
                             buckets, exposed)  # fmt: skip
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
        created = self._new_series(metric, now)
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

    def _new_series(self, metric: _Metric, now: float) -> Series:
        kind = metric.kind
        if kind == COUNTER:
            return CounterSeries(now)
        if kind == GAUGE:
            return GaugeSeries(now)
        if kind == HISTOGRAM:
            return HistogramSeries(now, metric.buckets)
        if kind == SUMMARY:
            return SummarySeries(now)
        return SetSeries(now, self.max_series_per_metric)

    def expire(self, now: float) -> int:
        """Remove the series (and set values) not updated for ``ttl``; how many series."""
        if self.ttl <= 0:
            return 0
        cutoff = now - self.ttl
        removed = 0
        for metric in list(self.metrics.values()):
            series = metric.series
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

    def _forget(self, metric: _Metric) -> None:
        del self.metrics[metric.name]
        for claimed in metric.exposed:
            self._claimed.pop(claimed, None)
        self.generation += 1

    def clear(self) -> None:
        for metric in list(self.metrics.values()):
            self._forget(metric)
        self.series_count = 0

    def families(self) -> Iterator[Metric]:
        """One prometheus_client family per metric."""
        for metric in list(self.metrics.values()):
            try:
                family = _family(metric)
            except Exception:  # never let one metric break /metrics
                log.exception("statsd metric left out of the scrape", extra={"metric": metric.name})
                continue
            yield family


def _family(metric: _Metric) -> Metric:
    kind, names, help = metric.kind, metric.label_names, metric.help
    family: Metric
    if kind == COUNTER:
        counter = CounterMetricFamily(metric.exposed[0], help, labels=names)
        for values, one in metric.series.items():
            assert isinstance(one, CounterSeries)
            counter.add_metric(values, one.value)
        family = counter
    elif kind in (GAUGE, SET):
        gauge = GaugeMetricFamily(metric.name, help, labels=names)
        for values, one in metric.series.items():
            if isinstance(one, SetSeries):
                gauge.add_metric(values, len(one.members))
            else:
                assert isinstance(one, GaugeSeries)
                gauge.add_metric(values, one.value)
        family = gauge
    elif kind == HISTOGRAM:
        # Samples made here rather than through add_metric, which builds the label
        # dict again for every bucket: a histogram is most of a large page's cost.
        histogram = HistogramMetricFamily(metric.name, help, labels=names)
        bounds = [floatToGoString(b) for b in metric.buckets] + ["+Inf"]  # type: ignore[no-untyped-call]
        bucket, count, total = metric.name + "_bucket", metric.name + "_count", metric.name + "_sum"
        samples = histogram.samples
        for values, one in metric.series.items():
            assert isinstance(one, HistogramSeries)
            labels = dict(zip(names, values, strict=True))
            running = 0
            for bound, observed in zip(bounds, one.counts, strict=True):
                running += observed
                samples.append(Sample(bucket, {**labels, "le": bound}, float(running)))
            samples.append(Sample(count, labels, float(one.count)))
            samples.append(Sample(total, labels, one.sum))
        family = histogram
    else:
        summary = SummaryMetricFamily(metric.name, help, labels=names)
        for values, one in metric.series.items():
            assert isinstance(one, SummarySeries)
            summary.add_metric(values, one.count, one.sum)
        family = summary
    return family


class StoreCollector:
    """Serves a store's families, while ``exposed()`` says so: when a reload
    starts a replacement, only the newest live store is served, so the page never
    has a family twice."""

    def __init__(
        self, store: SeriesStore, exposed: Callable[[StoreCollector], bool] | None = None
    ) -> None:
        self.store = store
        self.exposed = exposed

    def describe(self) -> list[Metric]:
        return []  # names change with traffic; registering never checks them

    def collect(self) -> Iterator[Metric]:
        if self.exposed is None or self.exposed(self):
            yield from self.store.families()
