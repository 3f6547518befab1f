"""What every proxy listener shares: binding, handing the socket over, counting
connections against a cap, and waiting for them to end when draining."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter, Gauge

from pillion.components import ComponentStartError
from pillion.config.types import ListenAddress

__all__ = ["Listening", "ListeningConnection"]

log = logging.getLogger("pillion.proxy")


class ListeningConnection(Protocol):
    def begin_drain(self) -> None: ...

    def abort(self) -> None: ...


class Listening:
    """A listening socket and the connections it accepted."""

    def __init__(
        self,
        name: str,
        address: ListenAddress,
        max_connections: int,
        active: Gauge,
        rejected: Counter,
    ) -> None:
        self.name = name
        self.address = address
        self.max_connections = max_connections
        self.connections: set[ListeningConnection] = set()
        self.draining = False
        self.bound: ListenAddress | None = None
        self.inherited: socket.socket | None = None
        self.loop = asyncio.get_running_loop()
        self._active = active
        self._rejected = rejected
        self._server: asyncio.Server | None = None
        self._empty = asyncio.Event()
        self._empty.set()

    async def listen(self, protocol: Callable[[], asyncio.Protocol]) -> None:
        """Bind (or take over ``inherited``); ``ComponentStartError`` if it cannot.
        An IPv6 address on a host without IPv6 is skipped with a warning (``bound``
        stays ``None``): the generated config of an injected pod listens on both
        families, and a pod without IPv6 has no IPv6 traffic to take."""
        host, port = self.address
        try:
            if self.inherited is not None:
                # The previous listener's socket, duplicated: the same accept queue,
                # so nothing waiting in it is reset when the old one closes.
                self._server = await self.loop.create_server(
                    protocol, sock=self.inherited, backlog=4096
                )
            else:
                self._server = await self.loop.create_server(
                    protocol, host, port, reuse_address=True, reuse_port=True, backlog=4096
                )
        except OSError as exc:
            if ":" in host and exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                log.warning(
                    "no IPv6 here: listener not started",
                    extra={"listener": self.name, "address": str(self.address)},
                )
                return
            reason = (
                "address already in use"
                if exc.errno == errno.EADDRINUSE
                else (exc.strerror or str(exc))
            )
            raise ComponentStartError(
                "proxy", f"cannot listen on {self.address}: {reason}"
            ) from exc
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        self.bound = ListenAddress(bound_host, bound_port)

    def listening_socket(self) -> socket.socket | None:
        """A duplicate of the listening socket, for a successor to accept from."""
        if self._server is None or not self._server.sockets:
            return None
        return socket.socket(fileno=os.dup(self._server.sockets[0].fileno()))

    def connection_opened(self, connection: ListeningConnection) -> bool:
        if len(self.connections) >= self.max_connections:
            self._rejected.inc()
            return False
        self.connections.add(connection)
        self._empty.clear()
        self._active.inc()
        return True

    def connection_closed(self, connection: ListeningConnection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self._active.dec()
            if not self.connections:
                self._empty.set()

    def stop_accepting(self) -> None:
        self.draining = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.begin_drain()

    async def wait_closed(self, deadline: float) -> None:
        remaining = max(0.0, deadline - self.loop.time())
        try:
            async with asyncio.timeout(remaining):
                await self._empty.wait()
        except TimeoutError:
            log.warning(
                "drain deadline passed; closing connections",
                extra={"listener": self.name, "connections": len(self.connections)},
            )

    async def close(self) -> None:
        self.stop_accepting()
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
