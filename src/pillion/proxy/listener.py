"""HTTP listeners: the inbound one in front of the app, the outbound one the app
calls. Each owns its listening socket, its connections' settings, its admission
``Gate`` (the listener's checks and its ``route``), and counts and logs every
finished exchange (``observe``). Connections know a listener only as their
``ConnectionHost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from pillion.components import ComponentStartError
from pillion.config.proxy import (
    InboundListenerConfig,
    OutboundListenerConfig,
    RateLimitConfig,
    Timeouts,
    TlsConfig,
)
from pillion.config.types import ListenAddress
from pillion.http.request import ParserLimits, RequestHead
from pillion.proxy.accesslog import AccessLog
from pillion.proxy.apikeys import ApiKeys, ApiKeysError
from pillion.proxy.authz import Authorization
from pillion.proxy.cluster import Cluster, RetryControl, Target
from pillion.proxy.connection import Http1Connection
from pillion.proxy.exchange import ExchangeSettings, Http2Settings
from pillion.proxy.forwarding import IDENTITY_HEADER
from pillion.proxy.gate import Gate, Peer, Router
from pillion.proxy.http2 import Http2Connection
from pillion.proxy.listening import Listening, ListeningConnection
from pillion.proxy.metrics import ListenerMetrics
from pillion.proxy.observe import ExchangeObserver
from pillion.proxy.ratelimit import RateLimit
from pillion.proxy.retries import RetryBudget
from pillion.proxy.routes import InboundRouter, OutboundRouter, route_table
from pillion.proxy.tls import Identities, TlsHandshake, TlsMetrics, watch_certificates
from pillion.proxy.tracing import Tracing
from pillion.proxy.transparent import CapturedConnection, OriginalDestinations
from pillion.proxy.upstream import AppProtocol, UpstreamPool
from pillion.telemetry import Metrics
from pillion.telemetry.tracecontext import Propagation
from pillion.tls import ServerTls, TlsLoadError
from pillion.tls.contexts import CertificateFiles

__all__ = ["HttpListener", "InboundListener", "OutboundListener"]

if TYPE_CHECKING:
    from pillion.proxy.jwtauth import JwtAuthenticator
    from pillion.proxy.oidclogin import OidcLogin

log = logging.getLogger("pillion.proxy")

_KEY_FILE_CHECK = 1.0  # seconds between checks of an API key file for changes


def _nowhere(head: RequestHead, peer: Peer) -> Target | None:
    return None


class HttpListener(Listening):
    """An HTTP listening socket and its connections; ``router`` says where each
    request goes (``None``: nowhere, 404 with flag NR)."""

    router: Router  # set by each subclass before its ``_admission``

    def __init__(
        self,
        config: InboundListenerConfig | OutboundListenerConfig,
        metrics: Metrics,
        access_log: AccessLog | None,
        timeouts: Timeouts,
        rate_limit: RateLimitConfig | None = None,
    ) -> None:
        self.metrics = ListenerMetrics(metrics, config.name)
        self.observer = ExchangeObserver(config.name, self.metrics, access_log)
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
        self.oidc: OidcLogin | None = None
        self._key_watcher: asyncio.Task[None] | None = None
        self.tls: ServerTls | None = None
        self.tls_metrics = TlsMetrics(metrics, config.name)
        self.identities = Identities()
        self.handshake_timeout = 10.0
        self._tls_reload = 1.0
        self._watcher: asyncio.Task[None] | None = None
        self._upgrades = frozenset(protocol.encode() for protocol in config.upgrades)
        self.http1 = "http1" in config.protocols
        self.http2: Http2Settings | None = (
            Http2Settings(
                max_concurrent_streams=config.http2.max_concurrent_streams,
                stream_window=config.http2.initial_stream_window,
                connection_window=config.http2.initial_connection_window,
                only=not self.http1,
            )
            if "http2" in config.protocols
            else None
        )
        self._propagation: Propagation | None = None
        # replaced by ``_admission`` once a subclass has set up its router and checks
        self.gate = Gate(_nowhere)
        self.exchange_settings = ExchangeSettings(gate=self.gate, loop=self.loop)

    def _admission(self) -> None:
        """The gate and the exchanges' settings, once the checks are known."""
        self.gate = Gate(
            self.router,
            authorization=self.authorization,
            jwt=self.jwt,
            api_keys=self.api_keys,
            rate_limit=self.rate_limit,
            upgrades=self._upgrades,
            monotonic=self.loop.time,
            oidc=self.oidc,
        )
        self.exchange_settings = ExchangeSettings(
            gate=self.gate,
            loop=self.loop,
            scheme=self.scheme,
            identity_header=self.identity_header,
            propagation=self._propagation,
        )

    def trace_with(self, tracing: Tracing) -> None:
        """Make a span of every exchange, and send the app Pillion's span as parent."""
        tracer = tracing.tracer(self.name, outbound=self.outbound)
        self.observer.tracer = tracer
        self._propagation = tracer.propagation
        self.exchange_settings.propagation = tracer.propagation

    @property
    def outbound(self) -> bool:
        """Called by the app (client spans), rather than in front of it."""
        return False

    def new_connection(self) -> asyncio.Protocol:
        """The protocol of a connection just accepted (without TLS)."""
        if self.http2 is not None and self.http2.only:
            return Http2Connection(self, self.http2)
        return Http1Connection(self)

    def take_over_http2(
        self,
        connection: ListeningConnection,
        peer: Peer,
        transport: asyncio.Transport,
        data: bytes,
    ) -> None:
        """A cleartext connection opened with the HTTP/2 preface: HTTP/2 from here."""
        assert self.http2 is not None
        self.connection_closed(connection)
        down = Http2Connection(
            self,
            self.http2,
            client_ip=peer.client_ip,
            identity=peer.identity,
            original=peer.original,
        )
        transport.set_protocol(down)
        down.connection_made(transport)
        down.data_received(data)

    def use_tls(self, config: TlsConfig) -> None:
        """Terminate TLS with these certificates (loaded at ``start``)."""
        self.tls = ServerTls(
            [CertificateFiles(c.cert, c.key, tuple(c.server_names)) for c in config.certificates],
            client_ca=config.client_ca,
            client_certificate=config.client_certificate,
            min_version=config.min_version,
            alpn=(("h2",) if self.http2 is not None else ())
            + (("http/1.1",) if self.http1 else ()),
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
        if self.oidc is not None:
            from pillion.proxy.oidclogin import OidcSetupError

            try:
                await self.oidc.start()
            except OidcSetupError as exc:
                raise ComponentStartError("proxy", f"listener {self.name!r}: {exc}") from exc
        tls = self.tls
        if tls is not None:
            try:
                tls.load()
            except TlsLoadError as exc:
                raise ComponentStartError("proxy", f"listener {self.name!r}: {exc}") from exc
            self.tls_metrics.expiry(tls)
            await self.listen(lambda: TlsHandshake(self))
            self._watcher = self.loop.create_task(
                watch_certificates(tls, self.tls_metrics, self.name, self._tls_reload)
            )
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
        if self.oidc is not None:
            await self.oidc.close()
        await super().close()

    async def _watch_api_keys(self, keys: ApiKeys) -> None:
        while True:
            await asyncio.sleep(_KEY_FILE_CHECK)
            keys.load()


class InboundListener(HttpListener):
    """In front of the app: every request goes to one upstream."""

    def __init__(
        self,
        config: InboundListenerConfig,
        upstream: ListenAddress,
        clusters: dict[str, Cluster],
        app_protocol: AppProtocol,
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
        if config.oidc is not None:
            from pillion.proxy.oidclogin import OidcLogin

            self.oidc = OidcLogin(config.oidc, config.name, metrics, tls=config.tls is not None)
        self.pool = UpstreamPool(
            upstream,
            connect_timeout=config.timeouts.connect,
            idle_timeout=config.timeouts.upstream_idle,
            max_idle=config.upstream_max_idle,
            connect_errors=self.metrics.upstream_connect_errors,
            protocol=app_protocol,
        )
        retries = RetryControl(config.name, RetryBudget.from_config(config.retry_budget), metrics)
        default = Target(
            self.pool, config.timeouts.request, str(upstream).encode(), retries=retries
        )
        self.router = InboundRouter(route_table(config.routes, clusters, default, None), default)
        self._admission()

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
        fixed = clusters[config.cluster] if config.cluster else None
        self.destinations = (
            OriginalDestinations(
                self,
                config.original_destination,
                metrics,
                connect_errors=self.metrics.upstream_connect_errors,
            )
            if config.original_destination is not None
            else None
        )
        self.router = OutboundRouter(
            route_table(config.routes, clusters, None, fixed),
            fixed,
            {name.encode(): cluster for name, cluster in clusters.items()},
            self.destinations,
        )
        self._admission()

    @property
    def outbound(self) -> bool:
        return True

    def new_connection(self) -> asyncio.Protocol:
        if self.destinations is not None:
            return CapturedConnection(self, self.destinations)
        return Http1Connection(self)

    async def close(self) -> None:
        await super().close()
        if self.destinations is not None:
            await self.destinations.close()
