"""The proxy's metric families, and children bound once per listener.

``pillion_requests_total`` children are cached per (method, code, flags), so the
per-request cost is a dict lookup and an increment, never a ``labels()`` call.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pillion.telemetry import Metrics

__all__ = ["ListenerMetrics", "ProxyFamilies"]

DURATION_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
SIZE_BUCKETS = (0, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE"})


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


class ListenerMetrics:
    """The children of one listener."""

    __slots__ = (
        "_families",
        "_listener",
        "_requests",
        "connections_active",
        "connections_rejected",
        "duration",
        "request_bytes",
        "response_bytes",
        "upstream_connect_errors",
    )

    def __init__(self, metrics: Metrics, listener: str) -> None:
        families = metrics.family("proxy", ProxyFamilies)
        self._families = families
        self._listener = listener
        self._requests: dict[tuple[bytes, int, str, tuple[str, str], bytes | None], Counter] = {}
        self.duration = families.duration.labels(listener)
        self.request_bytes = families.request_bytes.labels(listener)
        self.response_bytes = families.response_bytes.labels(listener)
        self.connections_active = families.connections_active.labels(listener)
        self.connections_rejected = families.connections_rejected.labels(listener)
        self.upstream_connect_errors = families.upstream_connect_errors.labels(listener)

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
        if grpc is not None and not (grpc.isdigit() and len(grpc) < 3):
            grpc = None  # not a gRPC status: never a label value of the app's choosing
        key = (method, code, flags, labels, grpc)
        child = self._requests.get(key)
        if child is None:
            name = method.decode() if method in _METHODS else "OTHER"
            status = grpc.decode() if grpc is not None else ""
            child = self._families.requests.labels(
                self._listener, labels[0], labels[1], name, str(code), flags, status
            )
            self._requests[key] = child
        return child
