"""The StatsD sockets: a UDP endpoint and a TCP server. They only move bytes to
the ingest (``statsd_ingest``), which does the parsing.

TCP is newline-delimited: complete lines go to the ingest as they arrive; a line
longer than ``max_packet_size`` is skipped up to its newline and counted
(``too_large``); a connection that ends in the middle of a line loses that
line only (``truncated``): the client never finished it, and half a line can
read as a different, valid sample (``a:12`` of ``a:125|c``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import typing
from collections.abc import Callable

from pillion.config.types import ListenAddress
from pillion.exporters.statsd_ingest import StatsdIngest

__all__ = ["StatsdTcpProtocol", "StatsdUdpProtocol", "listen_tcp", "listen_udp"]

log = logging.getLogger("pillion.exporters")

_RECEIVE_BUFFER = 4 * 1024 * 1024  # bursts wait in the kernel rather than being dropped


class StatsdUdpProtocol(asyncio.DatagramProtocol):
    def __init__(
        self, ingest: StatsdIngest, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ingest = ingest
        self._clock = clock  # the store's clock: series age by it

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.ingest.packet(data, self._clock())

    def error_received(self, exc: Exception) -> None:
        log.debug("statsd UDP error", extra={"error": str(exc)})


class StatsdTcpProtocol(asyncio.Protocol):
    def __init__(
        self,
        ingest: StatsdIngest,
        connections: set[StatsdTcpProtocol],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ingest = ingest
        self.connections = connections
        self._clock = clock  # the store's clock: series age by it
        self.transport: asyncio.Transport | None = None
        self._pending = b""  # the start of a line, without its newline yet
        self._skipping = False  # inside a line already counted as too large

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = typing.cast(asyncio.Transport, transport)
        self.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._skipping:
            newline = data.find(b"\n")
            if newline == -1:
                return
            data = data[newline + 1 :]
            self._skipping = False
        if self._pending:
            data = self._pending + data
            self._pending = b""
        last = data.rfind(b"\n")
        if last != -1:
            if last > 0:
                self.ingest.lines(data[:last], self._clock())
            data = data[last + 1 :]
        if len(data) > self.ingest.max_packet_size:
            self.ingest.dropped("too_large")
            self._skipping = True
        else:
            self._pending = data

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pending.strip() and not self._skipping:
            self.ingest.dropped("truncated")
        self._pending = b""
        self.connections.discard(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _bound_socket(address: ListenAddress, kind: socket.SocketKind) -> socket.socket:
    host, port = address
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=kind)[0]
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            # best effort: the kernel caps it at net.core.rmem_max
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        sock.bind(sockaddr)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def listen_udp(
    address: ListenAddress, ingest: StatsdIngest
) -> tuple[asyncio.DatagramTransport, ListenAddress]:
    """Bind ``address`` (``OSError`` if it cannot); the transport and where it is bound."""
    sock = _bound_socket(address, socket.SOCK_DGRAM)
    host, port = sock.getsockname()[:2]
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: StatsdUdpProtocol(ingest), sock=sock
        )
    except OSError:
        sock.close()
        raise
    return transport, ListenAddress(host, port)


async def listen_tcp(
    address: ListenAddress, ingest: StatsdIngest, connections: set[StatsdTcpProtocol]
) -> tuple[asyncio.Server, ListenAddress]:
    """Listen on ``address`` (``OSError`` if it cannot)."""
    sock = _bound_socket(address, socket.SOCK_STREAM)
    host, port = sock.getsockname()[:2]
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: StatsdTcpProtocol(ingest, connections), sock=sock, backlog=1024
        )
    except OSError:
        sock.close()
        raise
    return server, ListenAddress(host, port)
