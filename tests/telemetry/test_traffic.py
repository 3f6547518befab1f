"""Per-target points from readings of a real prometheus_client registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pillion.telemetry.readings import Reading, read_registry
from pillion.telemetry.traffic import TrafficTally

BUCKETS = (0.001, 0.01, 0.1, 1.0)


class Families:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pillion_requests", "r",
            ["listener", "route", "cluster", "method", "code", "flags", "grpc_status"],
            registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "pillion_request_duration_seconds", "d", ["listener"], buckets=BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.lines_in = Counter("pillion_logs_input_records", "i", ["input"],
                                registry=self.registry)  # fmt: skip
        self.other = Gauge("app_thing", "not ours", registry=self.registry)

    def request(
        self, code: str, seconds: float, route: str = "api", cluster: str = "orders"
    ) -> None:
        self.requests.labels("inbound", route, cluster, "GET", code, "", "").inc()
        self.duration.labels("inbound").observe(seconds)


def test_reading_keeps_only_pillion_families() -> None:
    families = Families()
    families.other.set(3)
    families.request("200", 0.005)
    reading = read_registry(families.registry)
    assert all(name.startswith("pillion_") for name in reading.names())
    assert reading.value("pillion_requests_total", code="200") == 1.0
    assert reading.value("pillion_requests_total", code="500") is None


def test_first_reading_only_sets_the_start() -> None:
    families = Families()
    families.request("200", 0.005)
    assert TrafficTally().update(read_registry(families.registry), 100.0) == {}


def test_rates_error_share_and_quantiles_per_target() -> None:
    families = Families()
    tally = TrafficTally()
    families.request("200", 0.5)  # before the first reading: not in the points
    tally.update(read_registry(families.registry), 100.0)
    for _ in range(8):
        families.request("200", 0.005)
    families.request("503", 0.005, route="other", cluster="")
    families.request("502", 0.05)
    points = tally.update(read_registry(families.registry), 105.0)
    listener = points["listener", "inbound"]
    assert listener["rate"] == pytest.approx(10 / 5)
    assert listener["errors"] == pytest.approx(2 / 10)
    assert listener["p50"] is not None
    assert 0.001 < listener["p50"] <= 0.01
    assert listener["p99"] is not None
    assert 0.01 < listener["p99"] <= 0.1
    assert points["route", "inbound/api"] == {"rate": pytest.approx(9 / 5),
                                              "errors": pytest.approx(1 / 9)}  # fmt: skip
    assert points["route", "inbound/other"]["errors"] == 1.0
    assert points["cluster", "orders"]["rate"] == pytest.approx(9 / 5)
    assert ("cluster", "") not in points


def test_idle_targets_have_a_zero_rate_and_no_error_share_or_latency() -> None:
    families = Families()
    tally = TrafficTally()
    families.request("200", 0.005)
    tally.update(read_registry(families.registry), 1.0)
    points = tally.update(read_registry(families.registry), 2.0)
    assert points["listener", "inbound"] == {"rate": 0.0, "errors": None, "p50": None,
                                             "p99": None}  # fmt: skip


def test_a_counter_reset_is_not_a_negative_rate() -> None:
    tally = TrafficTally()
    reading = _reading({"pillion_logs_input_records_total": [({"input": "app"}, 1000.0)]})
    tally.update(reading, 10.0)
    reset = _reading({"pillion_logs_input_records_total": [({"input": "app"}, 20.0)]})
    assert tally.update(reset, 12.0)["log_input", "app"]["rate"] == pytest.approx(10.0)


def test_a_clock_that_did_not_move_gives_no_points() -> None:
    tally = TrafficTally()
    reading = _reading({"pillion_logs_input_records_total": [({"input": "app"}, 1.0)]})
    tally.update(reading, 10.0)
    assert tally.update(reading, 10.0) == {}


def _reading(samples: dict[str, list[tuple[dict[str, str], float]]]) -> Reading:
    return Reading(samples)
