"""The proxy's metric families, and children bound once per listener.

A finished request is tallied, not written to ``prometheus_client`` at once: its
counter and its three histograms get plain integer additions on the event loop
(a bucket found by a short scan), and once per turn of the loop the tallies are
added to the ``prometheus_client`` children, one call per child that moved. A
busy loop finishes many requests per turn, so their locks and bucket searches
are paid once for all; a scrape is always served on a later turn, after the
flush, so it never sees the tallies behind (nor does a worker's multiprocess
file, written by the same flush).
"""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.values import MutexValue

from pillion.telemetry import Metrics
from pillion.telemetry.per_turn import PerTurn

__all__ = ["HistogramTally", "ListenerMetrics", "ProxyFamilies", "add"]

DURATION_BUCKETS: Final = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
SIZE_BUCKETS: Final = (
    0, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
_METHODS: Final = frozenset(
    {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"OTHER"}
)


class ProxyFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "pillion_requests",
            "Requests answered by the proxy, by listener, route, cluster, method, status "
            "code, response flags and, for gRPC calls, gRPC status (from the trailers or a "
            "trailers-only response; empty for other requests).",
            ["listener", "route", "cluster", "method", "code", "flags", "grpc_status"],
            registry=registry,
        )
        self.duration = Histogram(
            "pillion_request_duration_seconds",
            "Time from a request's headers to the end of its response.",
            ["listener"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.request_bytes = Histogram(
            "pillion_request_bytes",
            "Request body sizes.",
            ["listener"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.response_bytes = Histogram(
            "pillion_response_bytes",
            "Response body sizes.",
            ["listener"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.connections_active = Gauge(
            "pillion_connections_active",
            "Client connections open now.",
            ["listener"],
            registry=registry,
            multiprocess_mode="livesum",  # summed over live workers when there are several
        )
        self.connections_rejected = Counter(
            "pillion_connections_rejected",
            "Client connections closed at accept because max_connections was reached.",
            ["listener"],
            registry=registry,
        )
        self.upstream_connect_errors = Counter(
            "pillion_upstream_connect_errors",
            "Failed connection attempts to the upstream (refused, timed out).",
            ["listener"],
            registry=registry,
        )


def add(value: Any, amount: float) -> None:
    """``value.inc(amount)`` for a child's value: a single process's ``MutexValue``
    is added to inline (its ``inc``, interpreted, costs several times more), any
    other (a worker's file-backed value) through its ``inc``."""
    if type(value) is MutexValue:
        lock = value._lock  # ``with`` looks up and calls more: about twice the cost
        lock.acquire()
        try:
            value._value += amount
        finally:
            lock.release()
    else:
        value.inc(amount)


class HistogramTally:
    """Observations of one histogram child since the last ``flush``."""

    __slots__ = ("_bounds", "_child", "_counts", "_sum", "moved")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        # the child's upper bounds, +Inf last: a value goes in the first bucket
        # whose bound is >= the value, as Histogram.observe decides
        self._bounds: list[float] = list(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self.moved = False

    def observe(self, value: float) -> None:
        # a scan from the lowest bound: request durations and sizes sit in the first
        # few buckets, where it ends sooner than a ``bisect`` call costs
        bounds = self._bounds
        index = 0
        last = len(bounds) - 1  # +Inf: takes whatever the others did not
        while index < last and value > bounds[index]:
            index += 1
        self._counts[index] += 1
        self._sum += value
        self.moved = True

    def flush(self) -> None:
        if not self.moved:
            return
        self.moved = False
        child, counts = self._child, self._counts
        for index in range(len(counts)):
            count = counts[index]
            if count:
                counts[index] = 0
                add(child._buckets[index], count)
        add(child._sum, self._sum)
        self._sum = 0.0


class _RequestTally:
    __slots__ = ("child", "count")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.count = 0


class ListenerMetrics:
    """The children of one listener."""

    __slots__ = (
        "_families",
        "_flush",
        "_listener",
        "_requests",
        "_tallies",
        "connections_active",
        "connections_rejected",
        "duration",
        "duration_tally",
        "request_bytes",
        "request_bytes_tally",
        "response_bytes",
        "response_bytes_tally",
        "upstream_connect_errors",
    )

    def __init__(self, metrics: Metrics, listener: str) -> None:
        families = metrics.family("proxy", ProxyFamilies)
        self._families = families
        self._listener = listener
        self._requests: dict[tuple[bytes, int, str, tuple[str, str], bytes | None], Counter] = {}
        self._tallies: dict[
            tuple[bytes, int, str, tuple[str, str], bytes | None], _RequestTally
        ] = {}
        self._flush = PerTurn(self.flush)
        self.duration = families.duration.labels(listener)
        self.request_bytes = families.request_bytes.labels(listener)
        self.response_bytes = families.response_bytes.labels(listener)
        self.duration_tally = HistogramTally(self.duration)
        self.request_bytes_tally = HistogramTally(self.request_bytes)
        self.response_bytes_tally = HistogramTally(self.response_bytes)
        self.connections_active = families.connections_active.labels(listener)
        self.connections_rejected = families.connections_rejected.labels(listener)
        self.upstream_connect_errors = families.upstream_connect_errors.labels(listener)

    def finished(
        self,
        method: bytes,
        code: int,
        flags: str,
        labels: tuple[str, str],
        grpc: bytes | None,
        duration: float,
        bytes_in: int,
        bytes_out: int,
        exemplar: dict[str, str] | None = None,
    ) -> None:
        """Tally one finished request (its duration in seconds): added to the
        children at the end of this turn of the loop. An exemplar goes to the
        duration histogram at once, with its observation."""
        if method not in _METHODS:
            method = b"OTHER"  # HTTP/2 takes any token: never a key of the client's choosing
        if grpc is not None and not (grpc.isdigit() and len(grpc) < 3):
            grpc = None
        key = (method, code, flags, labels, grpc)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _RequestTally(
                self.request(method, code, flags, labels, grpc)
            )
        tally.count += 1
        if exemplar is None:
            self.duration_tally.observe(duration)
        else:
            self.duration.observe(duration, exemplar)
        self.request_bytes_tally.observe(bytes_in)
        self.response_bytes_tally.observe(bytes_out)
        self._flush.request()

    def flush(self) -> None:
        """Add the tallies to the ``prometheus_client`` children."""
        for tally in self._tallies.values():
            if tally.count:
                # the child's value, as ``Counter.inc`` ends (its checks hold for a child)
                add(tally.child._value, tally.count)
                tally.count = 0
        self.duration_tally.flush()
        self.request_bytes_tally.flush()
        self.response_bytes_tally.flush()

    def request(
        self,
        method: bytes,
        code: int,
        flags: str,
        labels: tuple[str, str] = ("", ""),
        grpc: bytes | None = None,
    ) -> Counter:
        """The counter of requests with these labels; ``labels`` are (route, cluster),
        ``grpc`` the gRPC status of a gRPC call."""
        if method not in _METHODS:
            method = b"OTHER"  # HTTP/2 takes any token: never a key of the client's choosing
        if grpc is not None and not (grpc.isdigit() and len(grpc) < 3):
            grpc = None  # not a gRPC status: never a label value of the app's choosing
        key = (method, code, flags, labels, grpc)
        child = self._requests.get(key)
        if child is None:
            name = method.decode()
            status = grpc.decode() if grpc is not None else ""
            child = self._families.requests.labels(
                self._listener, labels[0], labels[1], name, str(code), flags, status
            )
            self._requests[key] = child
        return child
