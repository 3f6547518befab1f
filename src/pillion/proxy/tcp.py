"""TCP passthrough (``proxy.tcp[]``): every byte forwarded both ways, nothing parsed.

Per client connection Pillion connects to the upstream (what the client sends
meanwhile is held, up to 64 KiB, then reading pauses), then copies bytes with
backpressure in both directions (a side whose write buffer fills pauses reading
on the other), passes half-closes on (``write_eof``), and closes both when both
sides are done, when either side fails, or after ``idle_timeout`` without a
byte. One timer per connection, re-armed lazily: data only updates a timestamp.
"""

from __future__ import annotations

import asyncio
import logging
import typing

from prometheus_client import CollectorRegistry, Counter, Gauge

from pillion.config.proxy import TcpListenerConfig
from pillion.proxy.listening import Listening
from pillion.telemetry import Metrics

__all__ = ["TcpClient", "TcpFamilies", "TcpListener", "TcpRelay"]

log = logging.getLogger("pillion.proxy")

_EARLY_LIMIT = 64 * 1024


class TcpFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["listener"]
        self.connections = Counter(
            "pillion_tcp_connections", "TCP connections accepted.", labels, registry=registry
        )
        self.active = Gauge(
            "pillion_tcp_connections_active",
            "TCP connections open now.",
            labels,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "pillion_tcp_connections_rejected",
            "TCP connections closed at accept because max_connections was reached.",
            labels,
            registry=registry,
        )
        self.received = Counter(
            "pillion_tcp_received_bytes",
            "Bytes received from TCP clients (and sent on to the upstream).",
            labels,
            registry=registry,
        )
        self.sent = Counter(
            "pillion_tcp_sent_bytes",
            "Bytes sent to TCP clients (received from the upstream).",
            labels,
            registry=registry,
        )
        self.connect_errors = Counter(
            "pillion_tcp_connect_errors",
            "Failed connection attempts to a TCP listener's upstream.",
            labels,
            registry=registry,
        )

    def counters(self, listener: str) -> tuple[Counter, Counter, Counter, Counter]:
        """A listener's accepted, received, sent and connect_errors counters."""
        return (
            self.connections.labels(listener),
            self.received.labels(listener),
            self.sent.labels(listener),
            self.connect_errors.labels(listener),
        )


class TcpRelay(typing.Protocol):
    """What a passthrough connection needs from whoever accepted it: its timeouts,
    its counters, and the place it counts against (a TCP listener, or an outbound
    listener passing a captured connection through)."""

    name: str
    loop: asyncio.AbstractEventLoop
    connect_timeout: float
    idle_timeout: float
    accepted: Counter
    received: Counter
    sent: Counter
    connect_errors: Counter

    def connection_opened(self, connection: TcpClient) -> bool: ...

    def connection_closed(self, connection: TcpClient) -> None: ...


class TcpListener(Listening):
    def __init__(self, config: TcpListenerConfig, metrics: Metrics) -> None:
        families = metrics.family("tcp", TcpFamilies)
        name = config.name
        super().__init__(
            name,
            config.listen,
            config.max_connections,
            families.active.labels(name),
            families.rejected.labels(name),
        )
        self.config = config
        self.connect_timeout = config.connect_timeout
        self.idle_timeout = config.idle_timeout
        self.accepted, self.received, self.sent, self.connect_errors = families.counters(name)

    async def start(self) -> None:
        await self.listen(lambda: TcpClient(self, self.config.upstream))
        where = {
            "listener": self.name,
            "address": str(self.bound),
            "upstream": str(self.config.upstream),
        }
        log.info("listening", extra=where)


class TcpClient(asyncio.Protocol):
    """The client side of one passthrough connection."""

    def __init__(self, listener: TcpRelay, upstream: tuple[str, int]) -> None:
        self.listener = listener
        self.upstream_address = upstream
        self.transport: asyncio.Transport | None = None
        self.upstream: TcpUpstream | None = None
        self.client_done = False  # the client sent EOF
        self.upstream_done = False  # the upstream sent EOF
        self.last_activity = 0.0
        self.closed = False
        self._connecting: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._early: list[bytes] = []  # sent before the upstream connected
        self._early_size = 0

    # -- asyncio.Protocol, client side --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        listener = self.listener
        if not listener.connection_opened(self):
            self.closed = True
            self.transport.abort()
            return
        listener.accepted.inc()
        self._connecting = listener.loop.create_task(self._connect())

    async def _connect(self) -> None:
        listener = self.listener
        host, port = self.upstream_address
        try:
            async with asyncio.timeout(listener.connect_timeout):
                _, upstream = await listener.loop.create_connection(
                    lambda: TcpUpstream(self), host, port
                )
        except (TimeoutError, OSError) as exc:
            listener.connect_errors.inc()
            log.info(
                "upstream connect failed",
                extra={
                    "listener": listener.name,
                    "upstream": f"{host}:{port}",
                    "error": type(exc).__name__,
                },
            )
            self.close()
            return
        if self.closed:
            upstream.close()
            return
        self.upstream = upstream
        self.touch()
        self._arm(listener.idle_timeout)
        if self._early and upstream.transport is not None:
            upstream.transport.write(b"".join(self._early))
            listener.received.inc(self._early_size)
        paused = self._early_size > _EARLY_LIMIT
        self._early, self._early_size = [], 0
        if self.client_done and upstream.transport is not None:
            upstream.transport.write_eof()
        if paused and self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)
            self.listener.received.inc(len(data))
            self.last_activity = self.listener.loop.time()
        elif not self.closed:
            self._early.append(data)
            self._early_size += len(data)
            if self._early_size > _EARLY_LIMIT and self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.client_done = True
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write_eof()  # the upstream sees the client's half-close
        if self.upstream_done:
            self.close()
        return True  # keep writing the upstream's answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    # -- from the upstream side --

    def from_upstream(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)
            self.listener.sent.inc(len(data))
            self.last_activity = self.listener.loop.time()

    def upstream_eof(self) -> None:
        self.upstream_done = True
        if self.transport is not None and not self.closed:
            self.transport.write_eof()
        if self.client_done:
            self.close()

    # -- lifecycle --

    def touch(self) -> None:
        self.last_activity = self.listener.loop.time()

    def _arm(self, delay: float) -> None:
        self._timer = self.listener.loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        idle = self.listener.idle_timeout
        waited = self.listener.loop.time() - self.last_activity
        if waited >= idle:
            log.info("idle timeout", extra={"listener": self.listener.name})
            self.close()
        else:
            self._arm(idle - waited)

    def begin_drain(self) -> None:
        """TCP has no way to ask a peer to finish: wait for it, up to the deadline."""

    def close(self) -> None:
        if self.closed and self.transport is None:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close()
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
        self.listener.connection_closed(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.close()


class TcpUpstream(asyncio.Protocol):
    """The upstream side of one passthrough connection."""

    def __init__(self, client: TcpClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.client.from_upstream(data)

    def eof_received(self) -> bool | None:
        self.client.upstream_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.client.close()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()

    def close(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
