"""The dashboard's sampler on a real metrics registry, without a server."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import Counter

from pillion.config import PillionConfig, parse_config
from pillion.runtime.control import ComponentHealth, Health
from pillion.runtime.dashboard import INTERVAL, StatsSampler, sampling_interval
from pillion.telemetry import Metrics


class _Control:
    """The supervisor, as far as the sampler looks (``runtime.control.Control``)."""

    def __init__(self) -> None:
        text = "proxy:\n  clusters: [{name: orders, endpoints: [10.0.0.1:80]}]\n"
        self._config = parse_config(text, "x", {})

    @property
    def config(self) -> PillionConfig:
        return self._config

    def health(self) -> Health:
        return Health(True, True, True, False, {"proxy": ComponentHealth("running", True, True)})

    def begin_drain(self) -> None:
        raise AssertionError("the sampler only looks")

    def request_exit(self) -> None:
        raise AssertionError("the sampler only looks")

    async def drain_inbound(self) -> None:
        raise AssertionError("the sampler only looks")


def _requests(metrics: Metrics) -> Counter:
    return metrics.family("test-requests", lambda registry: Counter(
        "pillion_requests", "r",
        ["listener", "route", "cluster", "method", "code", "flags", "grpc_status"],
        registry=registry,
    ))  # fmt: skip


def test_samples_become_points_and_the_document_reads_the_last_sample() -> None:
    metrics = Metrics()
    requests = _requests(metrics)
    sampler = StatsSampler(metrics, interval=1.0)
    sampler.sample()  # where counting starts
    requests.labels("inbound", "api", "orders", "GET", "200", "", "").inc(5)
    sampler.sample()
    requests.labels("inbound", "api", "orders", "GET", "200", "", "").inc(50)  # not sampled yet
    document = sampler.document(_Control())
    series = {(s["kind"], s["name"]): s for s in document["history"]["series"]}
    assert set(series) == {("listener", "inbound"), ("route", "inbound/api"),
                           ("cluster", "orders")}  # fmt: skip
    rate = series["listener", "inbound"]["rate"]
    assert len(rate) == 1
    assert rate[0] is not None
    assert rate[0] > 0
    assert document["history"]["interval_seconds"] == 1.0
    assert document["clusters"][0]["endpoints"][0]["address"] == "10.0.0.1:80"
    assert document["health"]["components"] == {
        "proxy": {"state": "running", "started": True, "ready": True}
    }


async def test_a_replacement_carries_on_with_the_history_and_the_records() -> None:
    metrics = Metrics()
    first = StatsSampler(metrics, interval=60)
    second = StatsSampler(metrics, interval=60)
    first.start()
    try:
        logging.getLogger("pillion.proxy").warning("before the reload")
        first.sample()
        first.sample()
        second.adopt(first)
        second.start()
        logging.getLogger("pillion.proxy").warning("after the reload")
        assert second.history is first.history
        messages = [r["message"] for r in second.recent.records()]
        assert messages == ["before the reload", "after the reload"]  # once each
        assert first.recent.records()[-1]["message"] == "before the reload"
    finally:
        await first.stop()
        await second.stop()


@pytest.mark.parametrize(
    ("given", "seconds"),
    [(None, INTERVAL), ("", INTERVAL), ("0.5", 0.5), ("60", 60.0), ("0", INTERVAL),
     ("nan", INTERVAL), ("soon", INTERVAL), ("3600", INTERVAL)],
)  # fmt: skip
def test_sampling_interval_from_the_environment(given: str | None, seconds: float) -> None:
    environ = {} if given is None else {"PILLION_DASHBOARD_INTERVAL": given}
    assert sampling_interval(environ) == seconds
