"""Where a request goes: a ``Target`` (pool, timeout, host), and clusters of them.

An inbound listener has one fixed target. An outbound listener picks a cluster,
and the cluster's balancer picks an endpoint (skipping ejected ones); the
result of each exchange is reported back, which is how failing endpoints get
ejected. Every endpoint has its own keep-alive pool.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import ClusterConfig
from pillion.config.types import ListenAddress
from pillion.proxy import flags
from pillion.proxy.balancing import Balancer, Endpoint, OutlierPolicy
from pillion.proxy.upstream import ConnectionCap, UpstreamPool
from pillion.telemetry import Metrics

__all__ = ["NO_EDITS", "OVERFLOW", "Cluster", "Edits", "Target"]

log = logging.getLogger("pillion.proxy")

_GATEWAY_FLAGS = frozenset({flags.UF, flags.UT, flags.UC, flags.UPE})


class Edits:
    """What a route changes on the way: the path prefix, headers; or a direct answer."""

    __slots__ = ("direct", "prefix", "remove", "replacement", "set_headers")

    def __init__(
        self,
        *,
        prefix: bytes | None = None,
        replacement: bytes | None = None,
        remove: frozenset[bytes] = frozenset(),
        set_headers: tuple[tuple[bytes, bytes], ...] = (),
        direct: tuple[int, bytes] | None = None,
    ) -> None:
        self.prefix = prefix
        self.replacement = replacement
        self.remove = remove
        self.set_headers = set_headers
        self.direct = direct

    def path(self, target: bytes) -> bytes | None:
        """The rewritten request target, or None when the route does not rewrite."""
        if self.prefix is None or self.replacement is None:
            return None
        return self.replacement + target[len(self.prefix) :]


NO_EDITS = Edits()
OVERFLOW_EDITS = Edits(direct=(503, b"upstream overflow: too many requests in flight\n"))


class Target:
    """An upstream for one exchange: its pool, its timeout, the Host to send."""

    __slots__ = ("cluster", "edits", "endpoint", "host", "pool", "request_timeout")

    def __init__(
        self,
        pool: UpstreamPool | None,
        request_timeout: float,
        host: bytes,
        cluster: Cluster | None = None,
        endpoint: Endpoint | None = None,
        edits: Edits = NO_EDITS,
    ) -> None:
        self.pool = pool  # None: answered directly (edits.direct)
        self.request_timeout = request_timeout
        self.host = host
        self.cluster = cluster
        self.endpoint = endpoint
        self.edits = edits

    def finished(self, status: int, flag: str) -> None:
        """The exchange ended: free the endpoint, report how it went."""
        if self.cluster is not None and self.endpoint is not None:
            self.cluster.active -= 1
            self.endpoint.active -= 1
            # UO is Pillion shedding load, not the endpoint failing
            failed = flag != flags.UO and (status >= 500 or flag in _GATEWAY_FLAGS)
            self.cluster.report(self.endpoint, failed=failed)


OVERFLOW = Target(None, 0.0, b"", edits=OVERFLOW_EDITS)
"""What a cluster at its ``max_active_requests`` answers: 503, flag UO."""


class ClusterFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.ejections = Counter(
            "pillion_outlier_ejections",
            "Endpoints ejected from a cluster after consecutive errors.",
            ["cluster"],
            registry=registry,
        )
        self.connect_errors = Counter(
            "pillion_cluster_connect_errors",
            "Failed connection attempts to a cluster's endpoints (refused, timed out).",
            ["cluster"],
            registry=registry,
        )


class Cluster:
    def __init__(self, config: ClusterConfig, metrics: Metrics) -> None:
        families = metrics.family("cluster", ClusterFamilies)
        connect_errors = families.connect_errors.labels(config.name)
        self.name = config.name
        self.config = config
        outliers = config.outliers
        breaker = config.circuit_breaker
        self.max_active = breaker.max_active_requests
        self.active = 0
        self._pools: dict[ListenAddress, UpstreamPool] = {}
        cap = ConnectionCap(breaker.max_connections)
        endpoints = []
        for address in config.endpoints:
            endpoints.append(Endpoint((address.host, address.port)))
            self._pools[address] = UpstreamPool(
                address,
                connect_timeout=config.timeouts.connect,
                idle_timeout=config.timeouts.upstream_idle,
                max_idle=config.max_idle_per_endpoint,
                connect_errors=connect_errors,
                cap=cap,
            )
        self.balancer = Balancer(
            endpoints,
            config.balancing,
            OutlierPolicy(
                consecutive=outliers.consecutive_errors,
                base_ejection=outliers.base_ejection,
                max_ejection=outliers.max_ejection,
                max_ejected=outliers.max_ejected_percent / 100,
            ),
        )
        self._ejections = families.ejections.labels(self.name)

    def target(self, host: bytes, timeout: float | None = None, edits: Edits = NO_EDITS) -> Target:
        """An endpoint for the next request, counted as busy until ``finished``;
        ``OVERFLOW`` when the cluster has ``max_active_requests`` in flight."""
        if self.active >= self.max_active:
            return OVERFLOW
        self.active += 1
        endpoint = self.balancer.pick(time.monotonic())
        endpoint.active += 1
        pool = self._pools[ListenAddress(*endpoint.address)]
        request_timeout = timeout if timeout is not None else self.config.timeouts.request
        return Target(pool, request_timeout, host, self, endpoint, edits)

    def report(self, endpoint: Endpoint, *, failed: bool) -> None:
        if self.balancer.report(endpoint, failed=failed, now=time.monotonic()):
            self._ejections.inc()
            log.warning(
                "endpoint ejected",
                extra={
                    "cluster": self.name,
                    "endpoint": f"{endpoint.address[0]}:{endpoint.address[1]}",
                    "seconds": round(endpoint.ejected_until - time.monotonic(), 1),
                },
            )

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
