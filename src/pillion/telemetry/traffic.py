"""Per-target points (request rate, error share, p50, p99) from successive readings.

A target is a listener, a route (``listener/route``), a cluster, a log input or
a log output. Each ``TrafficTally.update`` compares a reading with the previous
one: rates are increases over the seconds between them (counter resets
included, ``rates.counter_increase``), the error share is the part of the
requests answered with a 5xx, and the quantiles come from the increase of each
bucket of ``pillion_request_duration_seconds``, which is counted per listener
only: routes and clusters have rates and error shares, listeners also latency.
No I/O.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

from pillion.telemetry.rates import bucket_increase, counter_increase, histogram_quantile, share
from pillion.telemetry.readings import Reading

__all__ = ["FIELDS", "Point", "Target", "TrafficTally"]

Target = tuple[str, str]  # (kind, name): ("listener", "inbound"), ("route", "inbound/api")
Point = dict[str, float | None]

FIELDS: Final = ("rate", "errors", "p50", "p99")
REQUESTS: Final = "pillion_requests_total"
DURATION: Final = "pillion_request_duration_seconds_bucket"
LOG_COUNTERS: Final = {
    "log_input": ("pillion_logs_input_records_total", "input"),
    "log_output": ("pillion_logs_output_records_total", "output"),
}


class TrafficTally:
    """The cumulative values of the last reading, to turn the next into points."""

    def __init__(self) -> None:
        self._time: float | None = None
        self._requests: dict[Target, tuple[float, float]] = {}  # (all, 5xx) so far
        self._buckets: dict[str, tuple[list[float], list[float]]] = {}  # (bounds, counts)
        self._records: dict[Target, float] = {}

    def update(self, reading: Reading, time: float) -> dict[Target, Point]:
        """The points between the previous reading and this one, taken at ``time``
        (seconds); none for the first reading, which only sets where counting starts."""
        requests = _request_totals(reading)
        buckets = _duration_buckets(reading)
        records = _log_totals(reading)
        previous_time, self._time = self._time, time
        previous_requests, self._requests = self._requests, requests
        previous_buckets, self._buckets = self._buckets, buckets
        previous_records, self._records = self._records, records
        if previous_time is None or time <= previous_time:
            return {}
        elapsed = time - previous_time
        points: dict[Target, Point] = {}
        for target, (total, failed) in requests.items():
            before_total, before_failed = previous_requests.get(target, (0.0, 0.0))
            count = counter_increase(before_total, total)
            points[target] = {
                "rate": count / elapsed,
                "errors": share(counter_increase(before_failed, failed), count),
            }
        for listener, (bounds, counts) in buckets.items():
            before = previous_buckets.get(listener)
            increase = bucket_increase(
                before[1] if before is not None and before[0] == bounds else [0.0] * len(counts),
                counts,
            )
            point = points.setdefault(("listener", listener), {"rate": 0.0, "errors": None})
            point["p50"] = histogram_quantile(0.5, bounds, increase)
            point["p99"] = histogram_quantile(0.99, bounds, increase)
        for target, total in records.items():
            lines = counter_increase(previous_records.get(target, 0.0), total)
            points[target] = {"rate": lines / elapsed}
        return points


def _request_totals(reading: Reading) -> dict[Target, tuple[float, float]]:
    totals: dict[Target, list[float]] = defaultdict(lambda: [0.0, 0.0])
    by = reading.by(REQUESTS, "listener", "route", "cluster", "code")
    for (listener, route, cluster, code), value in by.items():
        failed = value if code.startswith("5") else 0.0
        targets = [("listener", listener)]
        if route:
            targets.append(("route", f"{listener}/{route}"))
        if cluster:
            targets.append(("cluster", cluster))
        for target in targets:
            totals[target][0] += value
            totals[target][1] += failed
    return {target: (all_, failed) for target, (all_, failed) in totals.items()}


def _duration_buckets(reading: Reading) -> dict[str, tuple[list[float], list[float]]]:
    per_listener: dict[str, dict[float, float]] = defaultdict(dict)
    for (listener, le), value in reading.by(DURATION, "listener", "le").items():
        per_listener[listener][float(le)] = value
    return {
        listener: (sorted(buckets), [buckets[b] for b in sorted(buckets)])
        for listener, buckets in per_listener.items()
    }


def _log_totals(reading: Reading) -> dict[Target, float]:
    totals: dict[Target, float] = {}
    for kind, (name, label) in LOG_COUNTERS.items():
        for (value_of,), value in reading.by(name, label).items():
            totals[kind, value_of] = value
    return totals
