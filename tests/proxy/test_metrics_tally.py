"""Tallied observations give the page that observing each one at once gives."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pillion.proxy.metrics import DURATION_BUCKETS, SIZE_BUCKETS, HistogramTally, ListenerMetrics
from pillion.telemetry import Metrics

EDGES = [*DURATION_BUCKETS, *SIZE_BUCKETS, 0.0, -1.0, 1e12, float("inf")]


def histograms(buckets: tuple[float, ...]) -> tuple[CollectorRegistry, Histogram, Histogram]:
    registry = CollectorRegistry()
    direct = Histogram("direct", "d", buckets=buckets, registry=registry)
    tallied = Histogram("tallied", "t", buckets=buckets, registry=registry)
    return registry, direct, tallied


def samples(registry: CollectorRegistry, name: str) -> list[tuple[str, float]]:
    page = generate_latest(registry).decode()
    return [
        (line.split(" ")[0].replace(name, ""), float(line.split(" ")[1]))
        for line in page.splitlines()
        if line.startswith(name + "_") and "_created" not in line
    ]


@given(st.lists(st.one_of(st.sampled_from(EDGES), st.floats(0, 100)), max_size=50))
def test_a_tally_flushed_equals_each_observed(values: list[float]) -> None:
    for buckets in (DURATION_BUCKETS, tuple(float(b) for b in SIZE_BUCKETS)):
        registry, direct, tallied = histograms(buckets)
        tally = HistogramTally(tallied)
        for value in values:
            direct.observe(value)
            tally.observe(value)
        tally.flush()
        tally.flush()  # a second flush adds nothing
        assert samples(registry, "tallied") == samples(registry, "direct")


def test_a_listeners_tallies_reach_the_page_by_the_next_turn() -> None:
    metrics = Metrics(process=False)
    listener = ListenerMetrics(metrics, "in")

    def page() -> str:
        return metrics.exposition(None)[0].decode()

    async def finish_three() -> tuple[str, str]:
        for _ in range(3):
            listener.finished(b"GET", 200, "-", ("", ""), None, 0.002, 10, 2048)
        listener.finished(b"BREW", 200, "-", ("", ""), b"not-a-status", 0.002, 0, 0)
        before = page()
        await asyncio.sleep(0)  # the next turn of the loop
        return before, page()

    before, after = asyncio.run(finish_three())
    get = (
        'pillion_requests_total{cluster="",code="200",flags="-",grpc_status="",'
        'listener="in",method="GET",route=""}'
    )
    assert f"{get} 0.0" in before  # tallied, not yet added
    assert f"{get} 3.0" in after
    assert 'method="OTHER"' in after
    assert "BREW" not in after
    assert "not-a-status" not in after
    assert 'pillion_request_duration_seconds_bucket{le="0.0025",listener="in"} 4.0' in after
    assert 'pillion_response_bytes_bucket{le="1024.0",listener="in"} 1.0' in after
    assert 'pillion_response_bytes_bucket{le="4096.0",listener="in"} 4.0' in after
