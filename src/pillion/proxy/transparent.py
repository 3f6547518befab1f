"""Captured outbound connections: the app called anywhere, ``pillion iptables
--mode all`` redirected the connection to an outbound listener, and it goes on
to where the app sent it.

At accept, ``SO_ORIGINAL_DST`` gives the destination the app asked for (a
connection that was not redirected has none, or its own address: the app
called the listener itself, and it is served as on any outbound listener).
Then the connection's protocol is found: a destination port listed in
``opaque_ports`` is passed through as bytes at once; otherwise the first bytes
decide (``http.sniff``): an HTTP/1 request line makes it an HTTP connection of
the listener (routes, clusters named by its host, then the original
destination, with metrics and the access log), and so does the HTTP/2 preface
(prior knowledge: the destination is then called over HTTP/2 too, from its own
pool), anything else is passed
through as bytes, and so is a connection still silent after
``detect_timeout`` (the server speaks first). Nothing sent is lost on the way:
the bytes read while deciding are replayed to whichever side takes over.

Each destination has its own keep-alive pool; at most ``max_destinations`` are
kept, the oldest retired first (its requests in flight finish).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import typing
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import OriginalDestinationConfig
from pillion.config.types import ListenAddress
from pillion.http.sniff import LONGEST_PREFIX, Sniffed, sniff
from pillion.proxy.cluster import Target
from pillion.proxy.connection import Http1Connection
from pillion.proxy.exchange import ConnectionHost
from pillion.proxy.http2 import Http2Connection
from pillion.proxy.tcp import TcpClient, TcpFamilies
from pillion.proxy.upstream import UpstreamPool
from pillion.telemetry import Metrics

__all__ = [
    "ORIGINAL_DESTINATION",
    "CaptureHost",
    "CapturedConnection",
    "OriginalDestinations",
    "original_destination",
    "parse_sockaddr_in",
    "parse_sockaddr_in6",
]

log = logging.getLogger("pillion.proxy")

ORIGINAL_DESTINATION = "original_destination"  # the cluster label of its requests
SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST has the same number
_SOCKADDR_IN = struct.Struct("!2xH4s8x")  # family (host order, skipped), port, address
_SOCKADDR_IN6 = struct.Struct("!2xH4x16s4x")  # family, port, flow info, address, scope
_NO_TIMEOUT = 365 * 86400.0  # a request timeout of 0: none, in practice
_KEEPALIVE_IDLE = 60.0  # seconds a pooled connection to a destination may sit idle


def parse_sockaddr_in(raw: bytes) -> tuple[str, int]:
    """The address and port of a ``struct sockaddr_in``, as ``getsockopt`` returns it."""
    port, packed = _SOCKADDR_IN.unpack(raw[: _SOCKADDR_IN.size])
    return socket.inet_ntoa(packed), port


def parse_sockaddr_in6(raw: bytes) -> tuple[str, int]:
    """The address and port of a ``struct sockaddr_in6``."""
    port, packed = _SOCKADDR_IN6.unpack(raw[: _SOCKADDR_IN6.size])
    return socket.inet_ntop(socket.AF_INET6, packed), port


def original_destination(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    """Where the app sent this connection before it was redirected; ``None`` when it
    was not redirected (no NAT record, or the destination is this socket itself)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    v6 = sock.family == socket.AF_INET6
    try:
        if v6:
            raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, _SOCKADDR_IN6.size)
        else:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, _SOCKADDR_IN.size)
    except OSError:  # ENOENT: conntrack has no record of it
        return None
    destination = parse_sockaddr_in6(raw) if v6 else parse_sockaddr_in(raw)
    local = sock.getsockname()
    if destination == (local[0], local[1]):
        return None
    return destination


class CaptureHost(ConnectionHost, Protocol):
    """What captured connections need of their outbound listener."""

    name: str


class CaptureFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Counter(
            "pillion_outbound_captured_connections",
            "Connections redirected to an outbound listener by traffic capture, by how "
            "they were served: http (detected), http2 (the HTTP/2 preface: prior knowledge), "
            "tcp (detected as not HTTP), opaque_port "
            "(passed through by port), silent (nothing sent before detect_timeout).",
            ["listener", "protocol"],
            registry=registry,
        )


class OriginalDestinations:
    """Keep-alive pools and passthrough settings for the destinations an outbound
    listener's captured connections asked for."""

    def __init__(
        self,
        listener: CaptureHost,
        config: OriginalDestinationConfig,
        metrics: Metrics,
        *,
        connect_errors: Counter,
    ) -> None:
        self.config = config
        self.listener = listener
        self._connect_errors = connect_errors
        self.opaque_ports = frozenset(config.opaque_ports)
        self.request_timeout = config.request_timeout or _NO_TIMEOUT
        self._targets: dict[tuple[tuple[str, int], bool], Target] = {}
        name = listener.name
        captured = metrics.family("capture", CaptureFamilies).connections
        self.counted = {
            kind: captured.labels(name, kind)
            for kind in ("http", "http2", "tcp", "opaque_port", "silent")
        }
        tcp = metrics.family("tcp", TcpFamilies)
        # what TcpClient needs (``TcpRelay``), for the connections passed through
        self.name = name
        self.loop = listener.loop
        self.connect_timeout = config.connect_timeout
        self.idle_timeout = config.idle_timeout
        self.accepted, self.received, self.sent, self.connect_errors = tcp.counters(name)

    def connection_opened(self, connection: TcpClient) -> bool:
        return self.listener.connection_opened(connection)

    def connection_closed(self, connection: TcpClient) -> None:
        self.listener.connection_closed(connection)

    def target(self, destination: tuple[str, int], *, http2: bool = False) -> Target:
        """Where an HTTP request to ``destination`` goes: its pool, kept for the next.
        ``http2``: the app spoke HTTP/2 with prior knowledge, so the destination
        does too (and gets its own pool of HTTP/2 connections)."""
        key = (destination, http2)
        target = self._targets.get(key)
        if target is None:
            target = self._add(key)
        return target

    def _add(self, key: tuple[tuple[str, int], bool]) -> Target:
        destination, http2 = key
        targets = self._targets
        if len(targets) >= self.config.max_destinations:
            oldest = next(iter(targets))
            pool = targets.pop(oldest).pool
            if pool is not None:
                pool.retire()
        address = ListenAddress(*destination)
        pool = UpstreamPool(
            address,
            connect_timeout=self.config.connect_timeout,
            idle_timeout=_KEEPALIVE_IDLE,
            max_idle=self.config.max_idle_per_destination,
            connect_errors=self._connect_errors,
            protocol="http2" if http2 else "http1",
        )
        host = str(address).encode()  # for requests without a Host ("[v6]:port")
        target = Target(pool, self.request_timeout, host)
        target.labels = ("", ORIGINAL_DESTINATION)
        targets[key] = target
        return target

    async def close(self) -> None:
        targets, self._targets = self._targets, {}
        for target in targets.values():
            if target.pool is not None:
                await target.pool.close()


class CapturedConnection(asyncio.Protocol):
    """A connection accepted by a capturing outbound listener, until it is known
    what it speaks; then an HTTP ``Http1Connection`` or a ``TcpClient`` takes
    the transport over."""

    def __init__(self, listener: CaptureHost, destinations: OriginalDestinations) -> None:
        self.listener = listener
        self.destinations = destinations
        self.transport: asyncio.Transport | None = None
        self.destination: tuple[str, int] | None = None
        self.received = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self.listener.connection_opened(self):
            self.transport.abort()  # over max_connections
            self.transport = None
            return
        destination = original_destination(transport)
        if destination is None:  # called directly, not captured
            self._hand_over(Http1Connection(self.listener))
            return
        self.destination = destination
        if destination[1] in self.destinations.opaque_ports:
            self._pass_through("opaque_port")
            return
        self._timer = self.listener.loop.call_later(
            self.destinations.config.detect_timeout, self._pass_through, "silent"
        )

    def data_received(self, data: bytes) -> None:
        self.received += data
        verdict = sniff(self.received[:LONGEST_PREFIX])
        if verdict is Sniffed.HTTP:
            self.destinations.counted["http"].inc()
            http = Http1Connection(self.listener)
            http.original = self.destination
            self._hand_over(http)
        elif verdict is Sniffed.HTTP2 and self.listener.http2 is not None:
            self.destinations.counted["http2"].inc()
            self._hand_over(
                Http2Connection(self.listener, self.listener.http2, original=self.destination)
            )
        elif verdict is not Sniffed.UNDECIDED:
            self._pass_through("tcp")  # (HTTP/2 too, when the listener does not speak it)

    def eof_received(self) -> bool | None:
        if not self.received:
            return False  # closed before a byte: nothing to pass on
        client = self._pass_through("tcp")
        return client.eof_received() if client is not None else False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.transport = None
        self.listener.connection_closed(self)

    def begin_drain(self) -> None:
        """Still deciding: nothing was forwarded yet; let it finish deciding."""

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _pass_through(self, why: str) -> TcpClient | None:
        assert self.destination is not None
        self.destinations.counted[why].inc()
        client = TcpClient(self.destinations, self.destination)
        return client if self._hand_over(client) else None

    def _hand_over(self, protocol: Http1Connection | Http2Connection | TcpClient) -> bool:
        """Give the transport, and the bytes read so far, to ``protocol``."""
        self._cancel_timer()
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        self.listener.connection_closed(self)  # the successor counts itself
        self.transport = None
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.received:
            received, self.received = self.received, b""
            protocol.data_received(received)
        return True

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
