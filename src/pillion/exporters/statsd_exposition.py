"""The StatsD store's families on ``/metrics``. No I/O.

The page is written here, line by line, in the format the scrape asked for
(the text format or OpenMetrics): a series' label text was made when it was
created (``statsd_text``), so a scrape only writes numbers. prometheus_client's
encoder would build a ``Sample`` per line first, which made a page of 10k series
(36k lines) take 150 ms.

It writes what the encoder would, byte for byte (the tests compare them): the
families in the store's order, the same ``# HELP`` / ``# TYPE`` lines, labels in
name order with a bucket's ``le`` among them. What it cannot write that way
goes through the encoder itself, from prometheus_client families (``families``):
a metric whose names an escaping would change (a mapped name with ``:``), and
every metric when the scraper asked for ``dots`` or ``values`` escaping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from pillion.exporters.statsd_store import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    SET,
    CounterSeries,
    GaugeSeries,
    HistogramSeries,
    SeriesStore,
    SetSeries,
    StoredMetric,
    SummarySeries,
)
from pillion.exporters.statsd_text import count_text, help_text, value_text
from pillion.telemetry.page import PageFormat

__all__ = ["StoreCollector", "families", "render"]

log = logging.getLogger("pillion.exporters")

_TYPES: Final = {COUNTER: "counter", GAUGE: "gauge", SET: "gauge", HISTOGRAM: "histogram"}
_LOW: Final = float("-inf")  # between _LOW and _HIGH, value_text(v) is repr(v)
_HIGH: Final = 1e6
_COUNTS: Final = tuple(f"{n}.0" for n in range(1000))  # count_text of small counts, made once


class StoreCollector:
    """Serves a store's families, while ``exposed()`` says so: when a reload
    starts a replacement, only the newest live store is served, so the page never
    has a family twice. A ``PageSection`` (``Metrics.add_section``); ``collect``
    makes it a prometheus_client collector too."""

    def __init__(
        self, store: SeriesStore, exposed: Callable[[StoreCollector], bool] | None = None
    ) -> None:
        self.store = store
        self.exposed = exposed

    def expose(self, page: PageFormat) -> bytes:
        if self.exposed is not None and not self.exposed(self):
            return b""
        if not page.direct:
            return page.encode(families(self.store))
        return render(self.store, page).encode()

    def describe(self) -> list[Metric]:
        return []  # names change with traffic; registering never checks them

    def collect(self) -> Iterator[Metric]:
        if self.exposed is None or self.exposed(self):
            yield from families(self.store)


def render(store: SeriesStore, page: PageFormat) -> str:
    """The store's families as ``page.encoder`` writes them (``page.direct``)."""
    out: list[str] = []
    openmetrics = page.openmetrics
    for metric in store.metrics.values():
        mark = len(out)
        try:
            if metric.plain:
                _write(metric, out, openmetrics=openmetrics)
            else:
                out.append(page.encode(_one(metric)).decode())
        except Exception:  # never let one metric break /metrics
            del out[mark:]
            log.exception("statsd metric left out of the scrape", extra={"metric": metric.name})
    return "".join(out)


def _write(metric: StoredMetric, out: list[str], *, openmetrics: bool) -> None:
    kind = metric.kind
    name = metric.name
    if kind == COUNTER:
        name = metric.exposed[0]
        if name.endswith("_total"):  # as CounterMetricFamily strips it
            name = name[:-6]
    # the text format names a counter family by its samples (`_total`), OpenMetrics does not
    head = name + "_total" if kind == COUNTER and not openmetrics else name
    help = help_text(metric.help, openmetrics=openmetrics)
    out.append(f"# HELP {head} {help}\n# TYPE {head} {_TYPES.get(kind, 'summary')}\n")
    append = out.append
    if kind == COUNTER:
        sample = name + "_total"
        for one in metric.series.values():
            assert isinstance(one, CounterSeries)
            value = one.value
            text = repr(value) if _LOW < value < _HIGH else value_text(value)
            append(f"{sample}{one.labels} {text}\n")
    elif kind == GAUGE:
        for gauge in metric.series.values():
            assert isinstance(gauge, GaugeSeries)
            value = gauge.value
            text = repr(value) if _LOW < value < _HIGH else value_text(value)
            append(f"{name}{gauge.labels} {text}\n")
    elif kind == HISTOGRAM:
        _histogram(metric, out)
    elif kind == SET:
        for one in metric.series.values():
            assert isinstance(one, SetSeries)
            append(f"{name}{one.labels} {count_text(len(one.members))}\n")
    else:
        count, total = name + "_count", name + "_sum"
        names = _quantile_names(metric)
        for one in metric.series.values():
            assert isinstance(one, SummarySeries)
            window = one.window
            if window is not None:
                opening, closing = name + one.quantile_open, one.quantile_close
                for quantile, value in zip(names, window.values(), strict=True):
                    append(f"{opening}{quantile}{closing}{value_text(value)}\n")
            append(f"{count}{one.labels} {count_text(one.count)}\n")
            append(f"{total}{one.labels} {value_text(one.sum)}\n")


def _quantile_names(metric: StoredMetric) -> list[str]:
    """``quantile="0.99"`` for each quantile the summary reports."""
    if metric.window is None:
        return []
    return [f'quantile="{floatToGoString(q)}"' for q, _ in metric.window[0]]  # type: ignore[no-untyped-call]


def _histogram(metric: StoredMetric, out: list[str]) -> None:
    name = metric.name
    bucket, count, total = name + "_bucket", name + "_count", name + "_sum"
    bounds = [f'le="{floatToGoString(b)}"' for b in metric.buckets] + ['le="+Inf"']  # type: ignore[no-untyped-call]
    append = out.append
    for one in metric.series.values():
        assert isinstance(one, HistogramSeries)
        opening, closing = bucket + one.bucket_open, one.bucket_close
        counts = one.counts  # as many as bounds: the store made it so
        running = 0
        for index in range(len(counts)):
            running += counts[index]
            text = _COUNTS[running] if running < 1000 else count_text(running)
            append(f"{opening}{bounds[index]}{closing}{text}\n")
        labels = one.labels
        append(f"{count}{labels} {count_text(one.count)}\n{total}{labels} {value_text(one.sum)}\n")


def families(store: SeriesStore) -> Iterator[Metric]:
    """One prometheus_client family per metric."""
    for metric in list(store.metrics.values()):
        try:
            family = _family(metric)
        except Exception:  # never let one metric break /metrics
            log.exception("statsd metric left out of the scrape", extra={"metric": metric.name})
            continue
        yield family


def _one(metric: StoredMetric) -> list[Metric]:
    return [_family(metric)]


def _family(metric: StoredMetric) -> Metric:
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
        # dict again for every bucket.
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
        quantiles = [str(floatToGoString(q)) for q, _ in metric.window[0]] if metric.window else []  # type: ignore[no-untyped-call]
        for values, one in metric.series.items():
            assert isinstance(one, SummarySeries)
            if one.window is not None:
                labels = dict(zip(names, values, strict=True))
                for quantile, value in zip(quantiles, one.window.values(), strict=True):
                    summary.samples.append(Sample(metric.name, {**labels, "quantile": quantile},
                                                  value))  # fmt: skip
            summary.add_metric(values, one.count, one.sum)
        family = summary
    return family
