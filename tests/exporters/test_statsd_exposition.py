"""The StatsD page written directly is the page prometheus_client's encoders write,
byte for byte, in every format and escaping a scraper may ask for."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

from pillion.exporters.statsd_exposition import StoreCollector, families
from pillion.exporters.statsd_store import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    SET,
    SUMMARY,
    CounterSeries,
    GaugeSeries,
    HistogramSeries,
    SeriesStore,
    SetSeries,
    SummarySeries,
)
from pillion.exporters.statsd_text import count_text, value_text
from pillion.telemetry.page import page_format
from tests.exporters.test_statsd_store import Harness

ACCEPTS = [
    None,
    "text/plain",
    "text/plain; version=0.0.4",
    "text/plain; version=1.0.0; escaping=underscores",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
    "text/plain; version=1.0.0; escaping=dots",
    "text/plain; version=1.0.0; escaping=values",
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
    "application/openmetrics-text; version=1.0.0; escaping=dots",
    "application/openmetrics-text; version=1.0.0; escaping=values",
    "application/openmetrics-text; version=2.0.0",
    "application/openmetrics-text; version=1.0.0, text/plain;q=0.5",
]

LINES = [
    "jobs.done:1|c",
    "jobs.done:2|c|@0.5|#route:/a,method:GET",
    "jobs.done:7|c|#route:/b,method:POST",
    'q:1|c|#path:/a"b\\c,zone:é',
    "temp:21.5|g|#room:kitchen",
    "temp:-3|g|#room:cellar",
    "big:12345678|g",
    "huge:1e300|g",
    "tiny:0.00001|g",
    "rpc:320|ms|#le:x,method:get,zone:a",
    "rpc:1200000|ms|#method:put,zone:b",
    "rpc:0.1|ms|#method:put,zone:b",
    "plain.sizes:3|h",
    "size:2|h|#a:1",
    "users:alice|s|#site:x",
    "users:bob|s|#site:x",
    "weird:1|c|#k:line\\nbreak",
    "mapped.x:5|c",
    "summarised:5|ms|#q:1",
]

MAPPINGS = [
    {"match": "mapped.*", "name": "app:mapped_$1", "help": 'Help with "quotes",\\ and more.'},
    {"match": "summarised", "name": "summarised", "observer_type": "summary"},
]


def both_pages(pod: Harness, accept: str | None) -> tuple[bytes, bytes]:
    """The page with the store written directly, and with it as a plain collector."""
    direct = pod.metrics.exposition(accept)[0]
    pod.metrics.remove_section(pod.collector)
    pod.metrics.add_collector(pod.collector)
    try:
        generic = pod.metrics.exposition(accept)[0]
    finally:
        pod.metrics.remove_collector(pod.collector)
        pod.metrics.add_section(pod.collector)
    return direct, generic


@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_page_is_the_encoders_page(accept: str | None) -> None:
    pod = Harness(mappings=MAPPINGS)
    pod.send(*LINES)
    direct, generic = both_pages(pod, accept)
    assert direct == generic
    assert b"rpc" in direct  # the store is on the page


def test_an_empty_store_adds_nothing() -> None:
    pod = Harness()
    for accept in ACCEPTS:
        direct, generic = both_pages(pod, accept)
        assert direct == generic


def test_only_plain_names_are_written_directly() -> None:
    pod = Harness(mappings=MAPPINGS)
    pod.send("mapped.x:5|c", "jobs:1|c")
    plain = {metric.name: metric.plain for metric in pod.store.metrics.values()}
    assert plain == {"app:mapped_x": False, "jobs": True}


def test_the_chosen_format_is_recognised() -> None:
    assert page_format(choose_encoder("")[0]).direct
    assert not page_format(choose_encoder("")[0]).openmetrics
    om = page_format(choose_encoder("application/openmetrics-text; version=1.0.0")[0])
    assert om.openmetrics
    assert om.direct
    dots = choose_encoder("application/openmetrics-text; version=1.0.0; escaping=dots")[0]
    assert not page_format(dots).direct
    assert not page_format(lambda registry: b"").direct


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e6, 999999.9, 1e16, 2.0**53, 1e-5, 123456.0]),
)
counts = st.one_of(st.integers(min_value=0, max_value=2**60),
                   st.sampled_from([0, 999_999, 1_000_000, 2**53]))  # fmt: skip
label_values = st.text(min_size=0, max_size=8)


@given(value=numbers)
def test_value_text_is_float_to_go_string(value: float) -> None:
    assert value_text(value) == floatToGoString(value)  # type: ignore[no-untyped-call]


@given(count=counts)
def test_count_text_is_float_to_go_string(count: int) -> None:
    assert count_text(count) == floatToGoString(float(count))  # type: ignore[no-untyped-call]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(numbers, min_size=1, max_size=4),
    tallies=st.lists(counts, min_size=1, max_size=4),
    labels=st.lists(label_values, min_size=3, max_size=3),
    accept=st.sampled_from(ACCEPTS),
)
def test_any_numbers_and_label_values(
    values: list[float], tallies: list[int], labels: list[str], accept: str | None
) -> None:
    store = SeriesStore(ttl=0, max_series_per_metric=100, max_series=1000, max_metrics=100)
    tags = {"b": labels[0], "zz": labels[1], "a": labels[2]}
    for index, (value, tally) in enumerate(zip(values, tallies, strict=False)):
        own = {**tags, "n": str(index)}
        counter = store.series("c_total", COUNTER, own, 0.0, help="a\\b\nc")
        assert isinstance(counter, CounterSeries)
        counter.value = abs(value) if not math.isnan(value) else value
        gauge = store.series("g", GAUGE, own, 0.0)
        assert isinstance(gauge, GaugeSeries)
        gauge.value = value
        histogram = store.series("h", HISTOGRAM, own, 0.0, buckets=(0.5, 1e7, math.inf))
        assert isinstance(histogram, HistogramSeries)
        histogram.counts = [tally, 1, tally, 0]
        histogram.count, histogram.sum = 2 * tally + 1, value
        summary = store.series("s", SUMMARY, own, 0.0)
        assert isinstance(summary, SummarySeries)
        summary.count, summary.sum = tally, value
        members = store.series("set", SET, own, 0.0)
        assert isinstance(members, SetSeries)
        members.members = {str(n): 0.0 for n in range(index)}
    page = page_format(choose_encoder(accept or "")[0])
    assert StoreCollector(store).expose(page) == page.encode(families(store))
