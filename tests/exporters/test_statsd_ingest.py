"""The ingest's cached routes (one per line shape) record what reading every line
whole records: the same page, the same counts, for any lines, fed whole, line by
line and again (when every shape is cached)."""

from __future__ import annotations

import bisect
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pillion import extensions
from pillion.exporters import statsd_exposition, statsd_ingest
from pillion.exporters.statsd_ingest import StatsdIngest
from pillion.exporters.statsd_store import HistogramSeries
from tests.exporters.test_statsd_store import Harness

names = st.sampled_from(
    ["a", "a.b", "b-c", "x,k=v", "x#k=v,j=w", "x[k=v]", "x[k", "le", "", " a", "a|c"]
)
values = st.sampled_from(["1", "0", "-1", "+2", "1.5", "1e3", "nan", "inf", "x", "", "1:2",
                          "3:4:5", " 7", "alice"])  # fmt: skip
kinds = st.sampled_from(["c", "g", "ms", "h", "d", "s", "t", ""])
extras = st.sampled_from(["", "|@0.5", "|@0", "|@2", "|#k:v", "|#le:1,z:q", "|#", "|#k:v|#j:w",
                          "|c:id", "|c", "|T1656581400", "|x", "|@0.1|#k:v", "|", ":2|g",
                          "|#k:v:w", "|@0.5|@0.5"])  # fmt: skip
lines = st.builds(lambda n, v, k, e, pad: f"{pad}{n}:{v}|{k}{e}{pad}",
                  names, values, kinds, extras, st.sampled_from(["", " ", "\r"]))  # fmt: skip
packets = st.lists(st.lists(lines, min_size=1, max_size=6), min_size=1, max_size=4)


def pod(cached: bool) -> Harness:
    harness = Harness(mappings=[{"match": "a.*", "name": "mapped_$1", "scale": 2},
                                {"match": "b-*", "action": "drop"}])  # fmt: skip
    if not cached:  # every line read whole by `split_packet`: the reference
        harness.ingest = StatsdIngest(harness.config, harness.store, harness.families, cache_size=0)
    return harness


def state(harness: Harness) -> tuple[bytes, list[tuple[str, float]]]:
    counts = [
        (sample.name + str(sorted(sample.labels.items())), sample.value)
        for family in harness.registry.collect()
        for sample in family.samples
        if sample.name.startswith("pillion_statsd_") and not sample.name.endswith("_created")
    ]
    page = b"".join(row for row in harness.page().splitlines(True) if b"_created" not in row)
    return page, counts


@settings(max_examples=150, deadline=None)
@given(packets=packets)
def test_routes_record_what_whole_lines_record(packets: list[list[str]]) -> None:
    fast, reference, line_by_line = pod(cached=True), pod(cached=False), pod(cached=True)
    for _ in range(2):  # the second time, every shape is cached
        for packet in packets:
            fast.send(*packet)
            reference.send(*packet)
            for line in packet:
                line_by_line.send(line)
    assert state(fast) == state(reference)
    packets_sent = b'pillion_statsd_packets_total{transport="udp"}'
    assert [row for row in state(line_by_line)[0].splitlines() if packets_sent not in row] == [
        row for row in state(reference)[0].splitlines() if packets_sent not in row
    ]


def test_a_value_that_is_not_a_number_creates_no_series() -> None:
    harness = pod(cached=True)
    harness.send("n:x|c", "n:x|c")
    assert harness.store.series_count == 0
    assert harness.dropped("malformed") == 2


def test_timestamps_are_not_cached_as_shapes() -> None:
    harness = pod(cached=True)
    harness.send(*(f"t:1|c|T{second}" for second in range(50)))
    assert harness.value("t_total") == 50.0
    assert len(harness.ingest._routes) == 0


def test_the_ingest_runs_compiled_when_the_hot_path_is() -> None:
    for module in (statsd_ingest, statsd_exposition):
        assert Path(module.__file__ or "").suffix == (".so" if extensions.compiled() else ".py")


@given(
    bounds=st.lists(st.floats(allow_nan=False), max_size=12).map(lambda b: tuple(sorted(b))),
    value=st.floats(allow_nan=False),
)
def test_a_histogram_finds_its_bucket_as_bisect_left_does(
    bounds: tuple[float, ...], value: float
) -> None:
    histogram = HistogramSeries(0.0, "", bounds)
    histogram.observe(value, 2)
    assert histogram.counts.index(2) == bisect.bisect_left(bounds, value)
