"""The proxy as a component: its listeners (HTTP inbound and outbound, TCP), their
clusters, and the access log.

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
import socket
from typing import TYPE_CHECKING

from pillion.components import Component, ComponentStartError
from pillion.config import PillionConfig
from pillion.config.models import AppConfig
from pillion.config.proxy import ProxyConfig
from pillion.config.tracing import TracingConfig
from pillion.config.types import ListenAddress
from pillion.proxy.accesslog import AccessLog
from pillion.proxy.cluster import Cluster
from pillion.proxy.listener import HttpListener, InboundListener, OutboundListener
from pillion.proxy.listening import Listening
from pillion.proxy.tcp import TcpListener
from pillion.telemetry import Metrics

if TYPE_CHECKING:
    from pillion.proxy.tracing import Tracing
from pillion.tls import TlsLoadError

__all__ = ["ProxyComponent"]


class ProxyComponent(Component):
    """All listeners of ``proxy`` (HTTP inbound and TCP), and the access log."""

    kind = "traffic"

    def __init__(
        self,
        config: ProxyConfig,
        app: AppConfig,
        metrics: Metrics,
        tracing: TracingConfig | None = None,
    ) -> None:
        self.name = "proxy"
        self._config = config
        self._tracing_config = tracing
        self.tracing: Tracing | None = None
        self._app = (app.host, app.port)
        self._app_protocol = app.protocol
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
        if self._tracing_config is not None:
            from pillion.proxy.tracing import Tracing

            self.tracing = Tracing(self._tracing_config, self._metrics)
            try:
                self.tracing.start()
            except TlsLoadError as exc:
                await self.close()
                raise ComponentStartError("proxy", f"telemetry.tracing.otlp.tls: {exc}") from exc
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
                self._app_protocol,
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
            if self.tracing is not None and isinstance(listener, HttpListener):
                listener.trace_with(self.tracing)
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
        if self.tracing is not None:  # the spans of the last requests
            await self.tracing.flush(deadline)

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
        if self.tracing is not None:
            await self.tracing.close()
            self.tracing = None
        self._started = False

    def can_reconfigure(self, config: PillionConfig) -> bool:
        return (
            config.proxy == self._config
            and config.telemetry.tracing == self._tracing_config
            and (config.app.host, config.app.port) == self._app
            and config.app.protocol == self._app_protocol
        )

    def reconfigure(self, config: PillionConfig) -> None:
        """Nothing to do: only called when the proxy's settings are unchanged."""
