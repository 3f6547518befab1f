"""Where a request goes: a ``Target`` (pool, timeout, host), and clusters of them.

An inbound listener has one fixed target. An outbound listener picks a cluster,
and the cluster's balancer picks an endpoint (skipping ejected ones); the
result of each exchange is reported back, which is how failing endpoints get
ejected. Every endpoint has its own keep-alive pool.

Endpoint host names are resolved at start and again every ``dns_refresh``;
every address of a name is an endpoint. A name that stops resolving keeps its
last addresses (and a warning is logged), so a DNS outage is not an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from pillion.config.proxy import ClusterConfig
from pillion.config.types import ListenAddress
from pillion.proxy import flags
from pillion.proxy.balancing import Balancer, Endpoint, OutlierPolicy
from pillion.proxy.edits import NO_ROUTE, OVERFLOW_EDITS, Edits, RouteSettings
from pillion.proxy.retries import RetryBudget, RetryPolicy
from pillion.proxy.upstream import ConnectionCap, UpstreamPool
from pillion.telemetry import Metrics
from pillion.tls import ClientTls, TlsLoadError

__all__ = ["Cluster", "RetryControl", "Target"]

log = logging.getLogger("pillion.proxy")

_GATEWAY_FLAGS: Final = frozenset({flags.UF, flags.UT, flags.UC, flags.UPE})
# answers that say nothing about the endpoint: Pillion shed or refused the request
_NOT_THE_ENDPOINT: Final = frozenset({flags.UO, flags.RL, flags.DPE, flags.DC})
_GAUGE_INTERVAL: Final = 1.0  # seconds between samples of the circuit gauges
_ALPN: Final = {"http1": ("http/1.1",), "http2": ("h2",), "auto": ("h2", "http/1.1")}


class RetryFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.retries = Counter(
            "pillion_upstream_retries",
            "Requests sent again, by upstream cluster and what failed "
            "(connect_failure, reset, status, per_try_timeout, grpc: a listed gRPC status).",
            ["cluster", "reason"],
            registry=registry,
        )
        self.overflow = Counter(
            "pillion_upstream_retry_overflow",
            "Retries not made because the retry budget or max_active_retries was spent.",
            ["cluster"],
            registry=registry,
        )


class RetryControl:
    """An upstream's retry budget and retry counters (a cluster, or a listener's app)."""

    __slots__ = ("_by_reason", "budget", "name", "overflow")

    def __init__(self, name: str, budget: RetryBudget, metrics: Metrics) -> None:
        families = metrics.family("retries", RetryFamilies)
        self.name = name
        self.budget = budget
        self.overflow = families.overflow.labels(name)
        self._by_reason = {
            reason: families.retries.labels(name, reason)
            for reason in ("connect_failure", "reset", "status", "per_try_timeout", "grpc")
        }

    def allow(self, now: float, reason: str, *, already_retrying: bool) -> bool:
        if self.budget.may_retry(now, already_retrying=already_retrying):
            self._by_reason[reason].inc()
            return True
        self.overflow.inc()
        return False


class Target:
    """An upstream for one exchange: its pool, its timeout, the Host to send, the
    route's settings, the retry policy and budget, and the labels of its metrics."""

    __slots__ = (
        "cluster",
        "edits",
        "endpoint",
        "flag",
        "host",
        "labels",
        "pool",
        "request_timeout",
        "retries",
        "retry",
        "route",
        "tracked",
    )

    def __init__(
        self,
        pool: UpstreamPool | None,
        request_timeout: float,
        host: bytes,
        *,
        route: RouteSettings = NO_ROUTE,
        cluster: Cluster | None = None,
        endpoint: Endpoint | None = None,
        retry: RetryPolicy | None = None,
        retries: RetryControl | None = None,
    ) -> None:
        self.pool = pool  # None: answered directly (edits.direct)
        self.request_timeout = request_timeout
        self.host = host
        self.route = route
        self.edits = route.edits
        self.cluster = cluster
        self.endpoint = endpoint
        self.retry = (route.retry or retry) if retries is not None else None
        self.retries = retries
        self.labels = (route.name, cluster.name if cluster is not None else "")
        self.flag: str = flags.NONE  # the response flag of a direct answer that is a failure
        # whether begin/finished keep counts (a cluster's, or a retry budget's)
        self.tracked = cluster is not None or self.retry is not None

    def begin(self) -> None:
        """A fixed target with a retry policy: one more request in flight (a
        cluster counts its own in ``Cluster.target``)."""
        if self.cluster is None and self.retries is not None:
            self.retries.budget.active_requests += 1

    def finished(self, status: int, flag: str, *, retrying: bool = False) -> None:
        """The exchange (or one try of it) ended: free the endpoint, report how it went."""
        if self.retries is not None:
            budget = self.retries.budget
            if self.cluster is None:
                budget.active_requests -= 1
            if retrying:
                budget.retry_done()
        if self.cluster is not None and self.endpoint is not None:
            self.cluster.budget.active_requests -= 1
            self.endpoint.active -= 1
            if flag not in _NOT_THE_ENDPOINT:
                failed = status >= 500 or flag in _GATEWAY_FLAGS
                self.cluster.report(self.endpoint, failed=failed)

    def again(self) -> Target:
        """A target for the next try: another endpoint of the cluster (or the same
        fixed upstream); the cluster's refusal when it is at its cap."""
        if self.cluster is None:
            return self
        return self.cluster.target(self.host, self.route)


NO_ADDRESS_EDITS: Final = Edits(direct=(503, b"no endpoint address yet\n"))


def _refusal(cluster: str, edits: Edits, flag: str) -> Target:
    """A cluster's own answer when it takes no request: direct, flagged, labelled."""
    target = Target(None, 0.0, b"", route=RouteSettings(edits=edits))
    target.flag = flag
    target.labels = ("", cluster)
    return target


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
        self.dns_failures = Counter(
            "pillion_cluster_dns_failures",
            "Resolutions of an endpoint host name that failed (the last addresses are kept).",
            ["cluster"],
            registry=registry,
        )
        self.endpoints = Gauge(
            "pillion_cluster_endpoints",
            "Endpoints of a cluster (addresses, after DNS), by state: healthy or ejected.",
            ["cluster", "state"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.ejected_until = Gauge(
            "pillion_cluster_endpoint_ejected_until_timestamp_seconds",
            "Sampled each second, per endpoint address of a cluster: when its ejection "
            "(outlier detection) ends, in seconds since the Unix epoch; 0 while in service.",
            ["cluster", "endpoint"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.in_flight = Gauge(
            "pillion_cluster_in_flight",
            "Sampled each second: requests, requests waiting for a connection (pending), "
            "retries and connections in flight to a cluster.",
            ["cluster", "kind"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.certificate_expiry = Gauge(
            "pillion_cluster_certificate_expiry_timestamp_seconds",
            "When a cluster's TLS files expire (Unix time): kind client is the workload "
            "certificate presented, kind ca the soonest-expiring CA that verifies servers.",
            ["cluster", "kind"],
            registry=registry,
            multiprocess_mode="min",
        )
        self.circuit_open = Gauge(
            "pillion_cluster_circuit_open",
            "Sampled each second: 1 while a circuit-breaker cap (requests, pending, "
            "retries, connections) is reached, so new ones get 503 UO.",
            ["cluster", "cap"],
            registry=registry,
            multiprocess_mode="max",
        )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Cluster:
    def __init__(self, config: ClusterConfig, metrics: Metrics) -> None:
        self.families = families = metrics.family("cluster", ClusterFamilies)
        self._connect_errors = families.connect_errors.labels(config.name)
        self._dns_failures = families.dns_failures.labels(config.name)
        self.name = config.name
        self.config = config
        breaker = config.circuit_breaker
        self.max_active = breaker.max_active_requests
        self.budget = RetryBudget.from_config(config.retry_budget, breaker.max_active_retries)
        self.retries = RetryControl(config.name, self.budget, metrics)
        self.retry = RetryPolicy(config.retry) if config.retry else None
        self.cap = ConnectionCap(breaker.max_connections, breaker.max_pending_requests)
        self._pools: dict[tuple[str, int], UpstreamPool] = {}
        # each configured entry's addresses: literal ones now, names once resolved
        self._resolved: dict[ListenAddress, list[tuple[str, int]]] = {
            entry: [(entry.host, entry.port)] if _is_address(entry.host) else []
            for entry in config.endpoints
        }
        outliers = config.outliers
        self.balancer = Balancer(
            [],
            config.balancing,
            OutlierPolicy(
                consecutive=outliers.consecutive_errors,
                base_ejection=outliers.base_ejection,
                max_ejection=outliers.max_ejection,
                max_ejected=outliers.max_ejected_percent / 100,
            ),
        )
        self._ejections = families.ejections.labels(self.name)
        self.overflow = _refusal(self.name, OVERFLOW_EDITS, flags.UO)
        self.no_address = _refusal(self.name, NO_ADDRESS_EDITS, flags.UF)
        self._tasks: list[asyncio.Task[None]] = []
        self._failing: set[str] = set()  # names whose last resolution failed
        tls = config.tls
        self.tls = ClientTls.of(tls, alpn=_ALPN[config.protocol]) if tls is not None else None
        self._apply()

    @property
    def active(self) -> int:
        return self.budget.active_requests

    async def start(self) -> None:
        """Resolve the endpoint names (once now, then every ``dns_refresh``) and
        start sampling the circuit gauges; ``TlsLoadError`` if its TLS files are unusable."""
        if self.tls is not None:
            self.tls.load()
            self._export_expiry(self.tls)
        if any(not _is_address(entry.host) for entry in self._resolved):
            await self.resolve()
            self._tasks.append(asyncio.create_task(self._refresh_dns()))
        self._tasks.append(asyncio.create_task(self._sample_gauges()))

    def target(self, host: bytes, route: RouteSettings = NO_ROUTE) -> Target:
        """An endpoint for the next request, counted as busy until ``finished``;
        a 503 (UO) when it has ``max_active_requests`` in flight, a 503 (UF) when
        its names have no address yet."""
        budget = self.budget
        if budget.active_requests >= self.max_active:
            return self.overflow
        endpoint = self.balancer.pick(time.monotonic())
        if endpoint is None:
            return self.no_address
        budget.active_requests += 1
        endpoint.active += 1
        pool = self._pools[endpoint.address]
        timeout = route.timeout if route.timeout is not None else self.config.timeouts.request
        return Target(
            pool,
            timeout,
            host,
            route=route,
            cluster=self,
            endpoint=endpoint,
            retry=self.retry,
            retries=self.retries,
        )

    def report(self, endpoint: Endpoint, *, failed: bool) -> None:
        if not failed:
            endpoint.failures = 0  # what the balancer would do, without the clock
            return
        if self.balancer.report(endpoint, failed=True, now=time.monotonic()):
            self._ejections.inc()
            log.warning(
                "endpoint ejected",
                extra={
                    "cluster": self.name,
                    "endpoint": f"{endpoint.address[0]}:{endpoint.address[1]}",
                    "seconds": round(endpoint.ejected_until - time.monotonic(), 1),
                },
            )

    # -- DNS --

    async def resolve(self) -> None:
        """Resolve every named entry once; a failure keeps its last addresses."""
        loop = asyncio.get_running_loop()
        changed = False
        for entry, previous in self._resolved.items():
            if _is_address(entry.host):
                continue
            try:
                infos = await loop.getaddrinfo(
                    entry.host, entry.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
            except (OSError, UnicodeError) as exc:
                self._dns_failures.inc()
                if entry.host not in self._failing:
                    self._failing.add(entry.host)
                    log.warning(
                        "endpoint name does not resolve; keeping its last addresses",
                        extra={
                            "cluster": self.name,
                            "host": entry.host,
                            "error": str(exc),
                            "addresses": [f"{h}:{p}" for h, p in previous],
                        },
                    )
                continue
            if entry.host in self._failing:
                self._failing.discard(entry.host)
                log.info(
                    "endpoint name resolves again",
                    extra={"cluster": self.name, "host": entry.host},
                )
            addresses = _preferred(infos)
            if addresses != previous:
                self._resolved[entry] = addresses
                changed = True
        if changed:
            self._apply()

    async def _refresh_dns(self) -> None:
        while True:
            await asyncio.sleep(self.config.dns_refresh)
            await self.resolve()

    def _apply(self) -> None:
        """Make the balancer's endpoints (and their pools) the resolved addresses,
        keeping the state of the ones that stay."""
        wanted = list(dict.fromkeys(a for addresses in self._resolved.values() for a in addresses))
        current = {endpoint.address: endpoint for endpoint in self.balancer.endpoints}
        endpoints = [current.get(address) or Endpoint(address) for address in wanted]
        for address, pool in list(self._pools.items()):
            if address not in wanted:
                pool.retire()
                del self._pools[address]
        timeouts = self.config.timeouts
        for address in wanted:
            if address not in self._pools:
                self._pools[address] = UpstreamPool(
                    ListenAddress(*address),
                    connect_timeout=timeouts.connect,
                    idle_timeout=timeouts.upstream_idle,
                    max_idle=self.config.max_idle_per_endpoint,
                    connect_errors=self._connect_errors,
                    cap=self.cap,
                    tls=self.tls,
                    protocol=self.config.protocol,
                )
        self.balancer.endpoints = endpoints
        if current and set(current) != set(wanted):
            log.info(
                "cluster endpoints changed",
                extra={"cluster": self.name, "endpoints": [f"{h}:{p}" for h, p in wanted]},
            )

    # -- gauges --

    def _sample_endpoints(self, shown: set[str], now: float) -> set[str]:
        """Each endpoint's ejection end (wall clock), and no series for the ones gone."""
        gauge = self.families.ejected_until
        wall = time.time() - now
        current: set[str] = set()
        for endpoint in self.balancer.endpoints:
            address = f"{endpoint.address[0]}:{endpoint.address[1]}"
            current.add(address)
            until = endpoint.ejected_until
            gauge.labels(self.name, address).set(wall + until if until > now else 0.0)
        for address in shown - current:  # a DNS answer without it
            with contextlib.suppress(KeyError):
                gauge.remove(self.name, address)
        return current

    async def _sample_gauges(self) -> None:
        families = self.families
        name = self.name
        healthy = families.endpoints.labels(name, "healthy")
        ejected = families.endpoints.labels(name, "ejected")
        in_flight = {kind: families.in_flight.labels(name, kind)
                     for kind in ("requests", "pending", "retries", "connections")}  # fmt: skip
        circuit = {kind: families.circuit_open.labels(name, kind)
                   for kind in ("requests", "pending", "retries", "connections")}  # fmt: skip
        breaker = self.config.circuit_breaker
        shown: set[str] = set()  # the endpoints with a series of their own
        while True:
            now = time.monotonic()
            out = sum(not e.available(now) for e in self.balancer.endpoints)
            healthy.set(len(self.balancer.endpoints) - out)
            ejected.set(out)
            shown = self._sample_endpoints(shown, now)
            counts = {
                "requests": (self.budget.active_requests, breaker.max_active_requests),
                "pending": (self.cap.pending, breaker.max_pending_requests),
                "retries": (self.budget.active_retries, breaker.max_active_retries),
                "connections": (self.cap.open, breaker.max_connections),
            }
            for kind, (count, limit) in counts.items():
                in_flight[kind].set(count)
                circuit[kind].set(1 if count >= limit else 0)
            if self.tls is not None and self.tls.changed():
                self._reload_tls(self.tls)
            await asyncio.sleep(_GAUGE_INTERVAL)

    def _reload_tls(self, tls: ClientTls) -> None:
        """New connections use the new files; pooled ones keep theirs."""
        try:
            tls.load()
        except TlsLoadError as exc:
            tls.mark_seen()
            log.error(
                "cluster TLS reload failed; the previous files keep being used",
                extra={"cluster": self.name, "error": str(exc)},
            )
            return
        self._export_expiry(tls)
        log.info("cluster TLS files reloaded", extra={"cluster": self.name})

    def _export_expiry(self, tls: ClientTls) -> None:
        gauge = self.families.certificate_expiry
        if tls.ca_expiry is not None:
            gauge.labels(self.name, "ca").set(tls.ca_expiry.timestamp())
        if tls.cert_expiry is not None:
            gauge.labels(self.name, "client").set(tls.cert_expiry.timestamp())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for pool in self._pools.values():
            await pool.close()


def _preferred(infos: Sequence[tuple[object, ...]]) -> list[tuple[str, int]]:
    """The addresses to use from getaddrinfo's answer: IPv4 ones when there are
    any (a name like ``localhost`` also has ``::1``, which the app may not
    listen on), else IPv6; in the resolver's order, without repeats."""
    v4: list[tuple[str, int]] = []
    v6: list[tuple[str, int]] = []
    for family, _, _, _, sockaddr in infos:
        assert isinstance(sockaddr, tuple)
        address = (str(sockaddr[0]), int(sockaddr[1]))
        (v4 if family == socket.AF_INET else v6).append(address)
    return list(dict.fromkeys(v4 or v6))
