"""The proxy as a component: its inbound listeners, their pools, the access log.

On a reload the new proxy takes a duplicate of each old listening socket whose
address it keeps (the same accept queue), and starts before the old one drains:
no connection is refused or reset in between. New addresses bind with
``SO_REUSEPORT`` (so workers can share them).
Drain: readiness fails (the supervisor), the listening sockets close, idle
keep-alive connections close, in-flight requests finish with
``Connection: close``, and whatever is left at the deadline is closed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random
import socket
import time
from itertools import accumulate
from time import perf_counter
from typing import TYPE_CHECKING

from pillion.components import Component, ComponentStartError
from pillion.config import PillionConfig
from pillion.config.proxy import (
    InboundListenerConfig,
    OutboundListenerConfig,
    ProxyConfig,
    RateLimitConfig,
    RouteConfig,
    Timeouts,
    TlsConfig,
)
from pillion.config.types import ListenAddress
from pillion.http.request import ParserLimits, RequestHead
from pillion.proxy.accesslog import AccessLog
from pillion.proxy.apikeys import ApiKeys, ApiKeysError
from pillion.proxy.authz import Authorization
from pillion.proxy.cluster import Cluster, Edits, RetryControl, RouteSettings, Target
from pillion.proxy.downstream import DownstreamConnection
from pillion.proxy.exchange import Exchange
from pillion.proxy.forwarding import IDENTITY_HEADER
from pillion.proxy.listening import Listening
from pillion.proxy.metrics import ListenerMetrics
from pillion.proxy.ratelimit import RateLimit
from pillion.proxy.retries import RetryBudget, RetryPolicy
from pillion.proxy.routing import RouteTable, compile_match
from pillion.proxy.tcp import TcpListener
from pillion.proxy.tls import Identities, TlsHandshake, TlsMetrics, watch_certificates
from pillion.proxy.transparent import CapturedConnection, OriginalDestinations
from pillion.proxy.upstream import UpstreamPool
from pillion.telemetry import Metrics
from pillion.telemetry.tracecontext import trace_id
from pillion.tls import ServerTls, TlsLoadError
from pillion.tls.contexts import CertificateFiles

__all__ = ["HttpListener", "InboundListener", "OutboundListener", "ProxyComponent"]

if TYPE_CHECKING:
    from pillion.proxy.jwtauth import JwtAuthenticator

log = logging.getLogger("pillion.proxy")

_KEY_FILE_CHECK = 1.0  # seconds between checks of an API key file for changes


EXEMPLAR_INTERVAL = 1.0  # seconds between trace-id exemplars on the duration histogram


class HttpListener(Listening):
    """An HTTP listening socket and its connections; ``route`` says where each
    request goes (``None``: nowhere, 404 with flag NR)."""

    def __init__(
        self,
        config: InboundListenerConfig | OutboundListenerConfig,
        metrics: Metrics,
        access_log: AccessLog | None,
        timeouts: Timeouts,
        rate_limit: RateLimitConfig | None = None,
    ) -> None:
        self.metrics = ListenerMetrics(metrics, config.name)
        self._exemplar_at = -EXEMPLAR_INTERVAL  # when the last exemplar was attached
        super().__init__(
            config.name,
            config.listen,
            config.max_connections,
            self.metrics.connections_active,
            self.metrics.connections_rejected,
        )
        self.parser_limits = ParserLimits(
            max_header_size=config.limits.max_header_size,
            max_headers=config.limits.max_headers,
            max_uri_size=config.limits.max_uri_size,
            max_body_size=config.limits.max_body_size,
        )
        self.header_timeout = timeouts.header
        self.idle_timeout = timeouts.idle
        self.access_log = access_log
        self.rate_limit = RateLimit(rate_limit) if rate_limit else None
        self.scheme = b"http"
        self.identity_header = IDENTITY_HEADER
        self.authorization: Authorization | None = None
        self.jwt: JwtAuthenticator | None = None
        self.api_keys: ApiKeys | None = None
        self._key_watcher: asyncio.Task[None] | None = None
        self.tls: ServerTls | None = None
        self.tls_metrics = TlsMetrics(metrics, config.name)
        self.identities = Identities()
        self.handshake_timeout = 10.0
        self._tls_reload = 1.0
        self._watcher: asyncio.Task[None] | None = None

    fixed_target: Target | None = None  # every request goes here (no per-request choice)

    def route(self, head: RequestHead, down: DownstreamConnection) -> Target | None:
        raise NotImplementedError

    def new_connection(self) -> asyncio.Protocol:
        """The protocol of a connection just accepted (without TLS)."""
        return DownstreamConnection(self)

    def use_tls(self, config: TlsConfig) -> None:
        """Terminate TLS with these certificates (loaded at ``start``)."""
        self.tls = ServerTls(
            [CertificateFiles(c.cert, c.key, tuple(c.server_names)) for c in config.certificates],
            client_ca=config.client_ca,
            client_certificate=config.client_certificate,
            min_version=config.min_version,
        )
        self.scheme = b"https"
        self.handshake_timeout = config.handshake_timeout
        self._tls_reload = config.reload_interval

    async def start(self) -> None:
        if self.api_keys is not None:
            try:
                self.api_keys.load()
            except ApiKeysError as exc:
                raise ComponentStartError("proxy", f"listener {self.name!r}: {exc}") from exc
            self._key_watcher = self.loop.create_task(self._watch_api_keys(self.api_keys))
        if self.jwt is not None:
            await self.jwt.start()
        tls = self.tls
        if tls is not None:
            try:
                tls.load()
            except TlsLoadError as exc:
                raise ComponentStartError("proxy", f"listener {self.name!r}: {exc}") from exc
            self.tls_metrics.expiry(tls)
            await self.listen(lambda: TlsHandshake(self))
            self._watcher = self.loop.create_task(watch_certificates(self, self._tls_reload))
        else:
            await self.listen(self.new_connection)
        if self.bound is None:
            return  # skipped: an IPv6 address without IPv6
        log.info(
            "listening",
            extra={"listener": self.name, "address": str(self.bound), "tls": tls is not None},
        )

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._key_watcher is not None:
            self._key_watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._key_watcher
            self._key_watcher = None
        if self.jwt is not None:
            await self.jwt.close()
        await super().close()

    async def _watch_api_keys(self, keys: ApiKeys) -> None:
        while True:
            await asyncio.sleep(_KEY_FILE_CHECK)
            keys.load()

    def observe(self, exchange: Exchange) -> None:
        """Count and log one finished exchange."""
        duration = perf_counter() - exchange.started_at
        head = exchange.head
        metrics = self.metrics
        target = exchange.target
        if target is None:
            metrics.request(head.method, exchange.status, exchange.flags).inc()
        else:
            metrics.request(head.method, exchange.status, exchange.flags, target.labels).inc()
            if target.tracked:
                target.finished(exchange.status, exchange.flags, retrying=exchange.retrying)
        forwarded = exchange.forwarded
        now = exchange.started_at + duration
        if forwarded is not None and now - self._exemplar_at >= EXEMPLAR_INTERVAL:
            # at most one a second: the trace id of a request in the bucket, for
            # OpenMetrics scrapers (exemplars cost too much to attach to every request)
            self._exemplar_at = now
            metrics.duration.observe(duration, {"trace_id": trace_id(forwarded.traceparent)})
        else:
            metrics.duration.observe(duration)
        metrics.request_bytes.observe(exchange.bytes_in)
        metrics.response_bytes.observe(exchange.bytes_out)
        if self.access_log is not None:
            self.access_log.record(
                (
                    time.time() - duration,
                    self.name,
                    exchange.down.client_ip,
                    head,
                    exchange.status,
                    exchange.flags,
                    exchange.bytes_in,
                    exchange.bytes_out,
                    duration,
                    exchange.upstream_seconds,
                    forwarded.request_id if forwarded else b"",
                    forwarded.traceparent if forwarded else b"",
                    target,
                    exchange.attempts,
                    exchange.down.identity,
                )
            )

    def observe_rejection(self, connection: DownstreamConnection, status: int, flag: str) -> None:
        """Count and log a request refused before it had a head (400, 408, 431...)."""
        self.metrics.request(b"OTHER", status, flag).inc()
        if self.access_log is not None:
            self.access_log.record(
                (time.time(), self.name, connection.client_ip, None, status, flag,
                 0, 0, 0.0, -1.0, b"", b"", None, 0, connection.identity)
            )  # fmt: skip


def _pairs(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((name.lower().encode(), value.encode()) for name, value in headers.items())


def _names(headers: list[str]) -> frozenset[bytes]:
    return frozenset(name.lower().encode() for name in headers)


class CompiledRoute:
    """A configured route, ready: where its requests go, what changes on the way."""

    __slots__ = ("cluster", "fixed", "settings", "split", "weights")

    def __init__(
        self,
        index: int,
        config: RouteConfig,
        clusters: dict[str, Cluster],
        default: Target | None,
        default_cluster: Cluster | None,
    ) -> None:
        direct = config.direct_response
        rewrite = config.prefix_rewrite is not None and config.match.prefix is not None
        edits = Edits(
            prefix=config.match.prefix.encode() if rewrite and config.match.prefix else None,
            replacement=config.prefix_rewrite.encode()
            if rewrite and config.prefix_rewrite
            else None,
            remove=_names(config.remove_request_headers),
            set_headers=_pairs(config.set_request_headers),
            add_headers=_pairs(config.add_request_headers),
            remove_response=_names(config.remove_response_headers),
            set_response=_pairs(config.set_response_headers),
            add_response=_pairs(config.add_response_headers),
            direct=(direct.status, direct.body.encode()) if direct else None,
        )
        self.settings = RouteSettings(
            config.name or str(index),
            edits,
            config.timeout,
            RetryPolicy(config.retry) if config.retry else None,
            RateLimit(config.rate_limit) if config.rate_limit else None,
            Authorization(config.authorization) if config.authorization else None,
            config.jwt_required,
            config.api_key_required,
        )
        self.cluster: Cluster | None = None
        self.fixed: Target | None = None
        self.split: list[Cluster] = []
        self.weights: list[int] = []
        if config.weighted_clusters:
            self.split = [clusters[w.cluster] for w in config.weighted_clusters]
            self.weights = list(accumulate(w.weight for w in config.weighted_clusters))
        elif direct is not None:
            self.fixed = Target(None, 0.0, b"", route=self.settings)
        elif config.cluster is not None:
            self.cluster = clusters[config.cluster]
        elif default_cluster is not None:
            self.cluster = default_cluster
        else:
            assert default is not None  # config validation: outbound routes name a cluster
            timeout = config.timeout if config.timeout is not None else default.request_timeout
            self.fixed = Target(
                default.pool,
                timeout,
                default.host,
                route=self.settings,
                retries=default.retries,
            )

    def resolve(self, head: RequestHead) -> Target:
        if self.fixed is not None:
            return self.fixed
        cluster = self.cluster
        if self.split:
            # weights are cumulative: the first above a random point in their range
            point = random.randrange(self.weights[-1])  # noqa: S311 - traffic, not secrets
            cluster = self.split[bisect.bisect_right(self.weights, point)]
        assert cluster is not None
        return cluster.target(head.host, self.settings)


def _route_table(
    routes: list[RouteConfig],
    clusters: dict[str, Cluster],
    default: Target | None,
    default_cluster: Cluster | None,
) -> RouteTable[CompiledRoute] | None:
    if not routes:
        return None
    return RouteTable(
        [
            (
                compile_match(route.match),
                CompiledRoute(index, route, clusters, default, default_cluster),
            )
            for index, route in enumerate(routes)
        ]
    )


class InboundListener(HttpListener):
    """In front of the app: every request goes to one upstream."""

    def __init__(
        self,
        config: InboundListenerConfig,
        upstream: ListenAddress,
        clusters: dict[str, Cluster],
        metrics: Metrics,
        access_log: AccessLog | None,
    ) -> None:
        super().__init__(config, metrics, access_log, config.timeouts, config.rate_limit)
        self.config = config
        self.upstream = upstream
        if config.tls is not None:
            self.use_tls(config.tls)
        if config.identity_header.lower() != IDENTITY_HEADER.decode():
            self.identity_header = config.identity_header.lower().encode()
        if config.authorization is not None:
            self.authorization = Authorization(config.authorization)
        if config.jwt is not None:
            # PyJWT brings cryptography (about 9 MiB): loaded only where JWTs are checked
            from pillion.proxy.jwtauth import JwtAuthenticator

            self.jwt = JwtAuthenticator(config.jwt, config.name, metrics)
        if config.api_keys is not None:
            self.api_keys = ApiKeys(config.api_keys, config.name, metrics)
        self.pool = UpstreamPool(
            upstream,
            connect_timeout=config.timeouts.connect,
            idle_timeout=config.timeouts.upstream_idle,
            max_idle=config.upstream_max_idle,
            connect_errors=self.metrics.upstream_connect_errors,
        )
        retries = RetryControl(config.name, RetryBudget.from_config(config.retry_budget), metrics)
        default = Target(
            self.pool, config.timeouts.request, str(upstream).encode(), retries=retries
        )
        self._routes = _route_table(config.routes, clusters, default, None)
        self.fixed_target = None if self._routes else default

    def route(self, head: RequestHead, down: DownstreamConnection) -> Target | None:
        if self._routes is None:
            return self.fixed_target
        found = self._routes.match(head.method, head.target, head.headers)
        return found.resolve(head) if found is not None else None

    async def close(self) -> None:
        await super().close()
        await self.pool.close()


class OutboundListener(HttpListener):
    """Called by the app: requests go to a cluster, fixed or named by their host."""

    def __init__(
        self,
        config: OutboundListenerConfig,
        clusters: dict[str, Cluster],
        metrics: Metrics,
        access_log: AccessLog | None,
    ) -> None:
        super().__init__(config, metrics, access_log, Timeouts())
        self.config = config
        self._fixed = clusters[config.cluster] if config.cluster else None
        self._by_host = {name.encode(): cluster for name, cluster in clusters.items()}
        self._routes = _route_table(config.routes, clusters, None, self._fixed)
        self.destinations = (
            OriginalDestinations(self, config.original_destination, metrics)
            if config.original_destination is not None
            else None
        )

    def new_connection(self) -> asyncio.Protocol:
        if self.destinations is not None:
            return CapturedConnection(self, self.destinations)
        return DownstreamConnection(self)

    def route(self, head: RequestHead, down: DownstreamConnection) -> Target | None:
        """A route's target, else the cluster named by the host, else (for a
        captured connection) the destination the app sent it to."""
        if self._routes is not None:
            found = self._routes.match(head.method, head.target, head.headers)
            if found is not None:
                return found.resolve(head)
        elif self._fixed is not None:
            return self._fixed.target(head.host)
        else:
            host = head.host.lower()
            if not host.startswith(b"["):
                host = host.rsplit(b":", 1)[0]
            cluster = self._by_host.get(host)
            if cluster is not None:
                return cluster.target(head.host)
        if down.original is not None and self.destinations is not None:
            return self.destinations.target(down.original)
        return None

    async def close(self) -> None:
        await super().close()
        if self.destinations is not None:
            await self.destinations.close()


class ProxyComponent(Component):
    """All listeners of ``proxy`` (HTTP inbound and TCP), and the access log."""

    kind = "traffic"

    def __init__(self, config: PillionConfig, metrics: Metrics) -> None:
        assert config.proxy is not None
        self.name = "proxy"
        self._config: ProxyConfig = config.proxy
        self._app = (config.app.host, config.app.port)
        self._metrics = metrics
        self.listeners: list[Listening] = []
        self.clusters: dict[str, Cluster] = {}
        self.access_log: AccessLog | None = None
        self._inherited: dict[ListenAddress, socket.socket] = {}
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def ready(self) -> bool:
        return self._started and not any(listener.draining for listener in self.listeners)

    def take_over(self, previous: Component) -> None:
        if isinstance(previous, ProxyComponent):
            self._inherited = {
                listener.address: sock
                for listener in previous.listeners
                if (sock := listener.listening_socket()) is not None
            }

    async def start(self) -> None:
        config = self._config
        if config.access_log is not None:
            self.access_log = AccessLog(config.access_log, self._metrics)
            try:
                self.access_log.open()
            except OSError as exc:
                raise ComponentStartError(
                    "proxy", f"cannot open access log {config.access_log.path}: {exc.strerror}"
                ) from exc
        self.clusters = {
            cluster.name: Cluster(cluster, self._metrics) for cluster in config.clusters
        }
        for cluster in self.clusters.values():
            try:
                await cluster.start()
            except TlsLoadError as exc:
                await self.close()
                raise ComponentStartError("proxy", f"cluster {cluster.name!r}: {exc}") from exc
        listeners: list[HttpListener | TcpListener] = [
            InboundListener(
                listener_config,
                listener_config.upstream or ListenAddress(*self._app),
                self.clusters,
                self._metrics,
                self.access_log,
            )
            for listener_config in config.inbound
        ]
        listeners += [
            OutboundListener(outbound, self.clusters, self._metrics, self.access_log)
            for outbound in config.outbound
        ]
        listeners += [TcpListener(tcp_config, self._metrics) for tcp_config in config.tcp]
        for listener in listeners:
            listener.inherited = self._inherited.pop(listener.address, None)
            try:
                await listener.start()
            except ComponentStartError:
                await self.close()
                raise
            self.listeners.append(listener)
        self._started = True

    async def drain_inbound(self, deadline: float) -> None:
        inbound = [listener for listener in self.listeners if isinstance(listener, InboundListener)]
        for listener in inbound:
            listener.stop_accepting()
        await asyncio.gather(*(listener.wait_closed(deadline) for listener in inbound))

    async def drain(self, deadline: float) -> None:
        for listener in self.listeners:
            listener.stop_accepting()
        await asyncio.gather(*(listener.wait_closed(deadline) for listener in self.listeners))

    async def close(self) -> None:
        for sock in self._inherited.values():  # not taken: its address is gone
            sock.close()
        self._inherited = {}
        for listener in self.listeners:
            await listener.close()
        self.listeners = []
        for cluster in self.clusters.values():
            await cluster.close()
        self.clusters = {}
        if self.access_log is not None:
            await self.access_log.close()
            self.access_log = None
        self._started = False

    def can_reconfigure(self, config: PillionConfig) -> bool:
        return config.proxy == self._config and (config.app.host, config.app.port) == self._app

    def reconfigure(self, config: PillionConfig) -> None:
        """Nothing to do: only called when the proxy's settings are unchanged."""
