"""Connections to the app: a keep-alive pool and the protocol that reads responses.

One request at a time per HTTP/1.1 connection; a pool whose app speaks HTTP/2
(``protocol: http2``, or ``auto`` and the app chose ``h2`` by ALPN) multiplexes
its requests as streams over few connections instead (``upstream_http2``).
A pooled HTTP/1.1 connection idle for longer than
``upstream_idle`` is closed rather than reused (the app may be closing it); the
check is a timestamp on acquire plus one sweep timer per pool, not a timer per
request. A new connection is the only thing that needs a task.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import typing
from typing import TYPE_CHECKING, Final, Literal

from pillion.config.types import ListenAddress
from pillion.http.errors import ResponseError
from pillion.http.headers import Headers
from pillion.http.response import ResponseParser
from pillion.http.serialize import LAST_CHUNK, chunk
from pillion.proxy.channels import UpstreamUser
from pillion.proxy.upstream_http2 import Http2ClientConnection
from pillion.tls import ClientTls, peer_identity

if TYPE_CHECKING:
    from prometheus_client import Counter

__all__ = ["UpstreamConnection", "UpstreamPool"]

log = logging.getLogger("pillion.proxy")

AppProtocol = Literal["http1", "http2", "auto"]


class UpstreamConnection(asyncio.Protocol):
    """An HTTP/1.1 connection to the app: the channel of one request at a time."""

    __slots__ = (
        "_chunked",
        "closed",
        "idle_since",
        "parser",
        "pool",
        "requests",
        "transport",
        "user",
    )
    http2 = False

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.user: UpstreamUser | None = None
        self.parser = ResponseParser(_NO_USER)
        self.closed = False
        self.idle_since = 0.0
        self.requests = 0
        self._chunked = False

    def bind(self, user: UpstreamUser) -> None:
        self.user = user
        self.requests += 1
        parser = self.parser
        parser.handler = user
        parser.expecting = True

    # -- UpstreamChannel --

    def send(self, head: bytes | Headers, body: list[bytes], end: bool, chunked: bool) -> None:
        assert isinstance(head, bytes)
        self._chunked = chunked
        if body or (end and chunked):
            parts = [head]
            parts.extend(map(chunk, body) if chunked else body)
            if end and chunked:
                self._chunked = False
                parts.append(LAST_CHUNK)
            head = b"".join(parts)
        self._write(head)

    def write(self, data: bytes) -> None:
        self._write(chunk(data) if self._chunked else data)

    def end_request(self) -> None:
        if self._chunked:
            self._chunked = False
            self._write(LAST_CHUNK)

    def release(self) -> None:
        self.pool.release(self)

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        user = self.user
        if self.parser.upgraded:  # a tunnel after a 101: bytes go straight through
            if user is not None:
                user.on_upstream_bytes(data)
            return
        if user is not None:
            user.cork()  # the client gets what this read produces in one write
        try:
            self.parser.feed(data)
        except ResponseError as exc:
            self.user = None
            self.abort()
            if user is not None:
                user.on_upstream_lost(exc)
        else:
            if self.parser.broken and self.user is None:
                self.abort()
            elif self.parser.upgraded and user is not None:
                user.on_upstream_bytes(self.parser.tunnel_data)
        finally:
            if user is not None:
                user.uncork()

    def eof_received(self) -> bool | None:
        if self.parser.upgraded and self.user is not None:
            user, self.user = self.user, None
            user.end_tunnel()
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        user = self.user
        if user is None:
            return
        if self.parser.upgraded:
            self.user = None
            user.end_tunnel()
            return
        try:
            self.parser.feed_eof()  # a read-until-close body ends here
        except ResponseError as error:
            self.user = None
            user.on_upstream_lost(error)

    def pause_writing(self) -> None:
        if self.user is not None:
            self.user.pause_downstream()

    def resume_writing(self) -> None:
        if self.user is not None:
            self.user.resume_downstream()


def _server_identity(connection: UpstreamConnection | Http2ClientConnection) -> str | None:
    transport = connection.transport
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    try:
        return peer_identity(der) if der else None
    except ValueError:
        return None


class _NoUser:
    """The handler of a connection between requests: nothing is expected."""

    def on_response(self, head: object) -> None:  # pragma: no cover - parser marks broken first
        pass

    def on_response_body(self, data: bytes) -> None:  # pragma: no cover
        pass

    def on_response_end(self) -> None:  # pragma: no cover
        pass


_NO_USER: Final = _NoUser()


class ConnectionCap:
    """A limit on connections shared by several pools (a cluster's endpoints), and
    on the requests that may wait for one while the limit is reached."""

    __slots__ = ("limit", "max_pending", "open", "pending", "pools")

    def __init__(self, limit: int, max_pending: int = 0) -> None:
        self.limit = limit
        self.max_pending = max_pending
        self.open = 0
        self.pending = 0
        self.pools: list[UpstreamPool] = []

    def freed(self) -> None:
        """A connection closed: a request waiting in one of the pools may open one."""
        self.open -= 1
        if self.pending:
            for pool in self.pools:
                if pool.serve_waiter_with_new_connection():
                    return


class _Negotiating(asyncio.Protocol):
    """A TLS connection of a pool whose protocol is ``auto``: once the handshake
    is done (before any byte is read), ALPN says which protocol takes it."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.chosen: UpstreamConnection | Http2ClientConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sslobj = transport.get_extra_info("ssl_object")
        http2 = sslobj is not None and sslobj.selected_alpn_protocol() == "h2"
        chosen = Http2ClientConnection(self.pool) if http2 else UpstreamConnection(self.pool)
        self.chosen = chosen
        transport.set_protocol(chosen)
        chosen.connection_made(transport)


class UpstreamPool:
    """Keep-alive connections to one upstream address: HTTP/1.1 connections, one
    request each at a time, or HTTP/2 connections shared by many streams."""

    def __init__(
        self,
        address: ListenAddress,
        *,
        connect_timeout: float,
        idle_timeout: float,
        max_idle: int,
        connect_errors: Counter,
        cap: ConnectionCap | None = None,
        tls: ClientTls | None = None,
        protocol: AppProtocol = "http1",
    ) -> None:
        self.tls = tls
        self.protocol = protocol
        # its requests go as streams of HTTP/2 connections (with ``auto``: once ALPN said so)
        self.http2 = protocol == "http2"
        self._h2: list[Http2ClientConnection] = []
        self._h2_connecting = 0
        self._streams_waiting: collections.deque[UpstreamUser] = collections.deque()
        self.cap = cap
        if cap is not None:
            cap.pools.append(self)
        self.address = address
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._connect_errors = connect_errors
        self._idle: list[UpstreamConnection] = []
        self._all: set[UpstreamConnection | Http2ClientConnection] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        self.waiting: collections.deque[UpstreamUser] = collections.deque()
        self.retired = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def acquire(self, user: UpstreamUser, *, fresh: bool = False) -> None:
        """Give ``user`` a connection now (pooled) or soon (new): ``on_upstream``."""
        if self.http2:
            self._acquire_stream(user, fresh=fresh)
            return
        idle = self._idle
        if not fresh:
            oldest = self._loop.time() - self.idle_timeout
            while idle:
                connection = idle.pop()
                if connection.closed or connection.idle_since < oldest:
                    connection.close()
                    continue
                connection.bind(user)
                user.on_upstream(connection)
                return
        self._open_within_cap(user)

    def _open_within_cap(self, user: UpstreamUser) -> None:
        """A new connection for ``user``, unless the cap is reached: then it waits
        for one (or is refused, when too many wait already)."""
        cap = self.cap
        if cap is not None:
            if cap.open >= cap.limit:
                if cap.pending >= cap.max_pending:
                    user.on_upstream_failure(503, "UO", "upstream connection limit reached")
                    return
                cap.pending += 1  # until a connection is released or one may be opened
                self.waiting.append(user)
                return
            cap.open += 1  # counted from the attempt on; released in forget()
        self._open(user)

    def _acquire_stream(self, user: UpstreamUser, *, fresh: bool) -> None:
        """A stream on the first HTTP/2 connection with room; else wait for the one
        being opened; else open one."""
        for connection in self._h2:
            if connection.room and not (fresh and connection.requests):
                user.on_upstream(connection.open(user))
                return
        if self._h2_connecting and not fresh:
            self._streams_waiting.append(user)  # the connection on its way takes it
            return
        self._open_within_cap(user)

    def connection_ready(self, connection: Http2ClientConnection) -> None:
        self._h2_connecting -= 1
        self.stream_released(connection)

    def stream_released(self, connection: Http2ClientConnection) -> None:
        """A stream of ``connection`` ended (or the connection is ready): requests
        waiting may have its room; past it, another connection is opened."""
        while connection.room and (self._streams_waiting or self.waiting):
            if self._streams_waiting:
                user = self._streams_waiting.popleft()
                if not user.wants_upstream:
                    continue
            else:
                waiter = self._next_waiter()
                if waiter is None:
                    break
                user = waiter
            user.on_upstream(connection.open(user))
        if (
            self._streams_waiting
            and not self._h2_connecting
            and not any(other.room for other in self._h2)
        ):
            self._acquire_stream(self._streams_waiting.popleft(), fresh=False)  # all full
        if not connection.streams:
            connection.idle_since = self._loop.time()
            if self.retired:
                connection.close()
            elif self._sweeper is None:
                self._sweeper = self._loop.call_later(self.idle_timeout, self._sweep)

    def no_new_streams(self, connection: Http2ClientConnection) -> None:
        if connection in self._h2:
            self._h2.remove(connection)

    def cancel(self, user: UpstreamUser) -> None:
        """``user`` no longer waits for a connection (it was answered, or left)."""
        try:
            self._streams_waiting.remove(user)
        except ValueError:
            pass
        else:
            return
        try:
            self.waiting.remove(user)
        except ValueError:
            return
        if self.cap is not None:
            self.cap.pending -= 1

    def _next_waiter(self) -> UpstreamUser | None:
        while self.waiting:
            user = self.waiting.popleft()
            if self.cap is not None:
                self.cap.pending -= 1
            if user.wants_upstream:
                return user
        return None

    def serve_waiter_with_new_connection(self) -> bool:
        """Open a connection for the first request waiting here, if any (the cap
        has room). True when one was started."""
        user = self._next_waiter()
        if user is None:
            return False
        assert self.cap is not None
        self.cap.open += 1
        self._open(user)
        return True

    def _open(self, user: UpstreamUser) -> None:
        if self.http2:
            self._h2_connecting += 1
            self._streams_waiting.append(user)  # in turn, once the connection is ready
        task = self._loop.create_task(self._connect(user))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    def _protocol(self) -> asyncio.Protocol:
        if self.http2:
            return Http2ClientConnection(self)
        if self.protocol == "auto" and self.tls is not None:
            return _Negotiating(self)
        return UpstreamConnection(self)

    async def _connect(self, user: UpstreamUser) -> None:
        host, port = self.address
        tls = self.tls
        opening_streams = self.http2
        try:
            async with asyncio.timeout(self.connect_timeout):
                if tls is None:
                    _, made = await self._loop.create_connection(self._protocol, host, port)
                else:
                    _, made = await self._loop.create_connection(
                        self._protocol,
                        host,
                        port,
                        ssl=tls.context,
                        server_hostname=tls.server_name or host,
                    )
        except (TimeoutError, OSError) as exc:
            if opening_streams:
                self._h2_connecting -= 1
            self._uncap()
            self._connect_errors.inc()
            message = (
                "upstream connect timeout"
                if isinstance(exc, TimeoutError)
                else f"upstream connect error: {exc.strerror or exc}"
            )
            self._connect_failed(user, message, opening_streams)
            return
        except BaseException:
            if opening_streams:
                self._h2_connecting -= 1
            raise
        connection = made.chosen if isinstance(made, _Negotiating) else made
        assert isinstance(connection, UpstreamConnection | Http2ClientConnection)
        self._all.add(connection)
        if tls is not None and tls.identities:
            identity = _server_identity(connection)
            if not tls.allows(identity):
                connection.abort()  # forget() releases its place under the cap
                self._connect_errors.inc()
                self._connect_failed(
                    user, f"upstream identity not allowed: {identity}", opening_streams
                )
                return
        if isinstance(connection, Http2ClientConnection):
            if not opening_streams:  # ``auto``: the app chose h2; its requests are streams now
                self.http2 = True
                self._h2_connecting += 1
            self._h2.append(connection)
            if not opening_streams and user.wants_upstream:
                self._streams_waiting.appendleft(user)  # served once the app's SETTINGS came
            if connection.ready:  # its SETTINGS came with the handshake (counted then)
                self.stream_released(connection)
            return
        if user.wants_upstream:
            connection.bind(user)
            user.on_upstream(connection)
        else:
            self.release(connection)

    def _connect_failed(self, user: UpstreamUser | None, message: str, streams: bool) -> None:
        if user is not None:
            with contextlib.suppress(ValueError):
                self._streams_waiting.remove(user)
            user.on_upstream_failure(503, "UF", message)
        if streams and not self._h2_connecting:
            waiting, self._streams_waiting = self._streams_waiting, collections.deque()
            for other in waiting:
                if other.wants_upstream:
                    other.on_upstream_failure(503, "UF", message)

    def release(self, connection: UpstreamConnection) -> None:
        """Take back a connection whose exchange ended cleanly."""
        connection.user = None
        parser = connection.parser
        parser.handler = _NO_USER
        if connection.closed or parser.broken or self.retired:
            connection.close()
            return
        if self.waiting:
            user = self._next_waiter()
            if user is not None:
                connection.bind(user)
                user.on_upstream(connection)
                return
        if len(self._idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = self._loop.time()
        self._idle.append(connection)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self.idle_timeout, self._sweep)

    def _uncap(self) -> None:
        if self.cap is not None:
            self.cap.freed()

    def forget(self, connection: UpstreamConnection | Http2ClientConnection) -> None:
        if connection in self._all:
            self._uncap()
        self._all.discard(connection)
        if isinstance(connection, Http2ClientConnection):
            if connection in self._h2:
                self._h2.remove(connection)
            if not connection.ready:  # it never got as far as the app's SETTINGS
                self._h2_connecting -= 1
                connection.ready = True  # (counted once)
                if not self._h2_connecting:
                    self._connect_failed(None, "upstream closed the connection", True)
        elif connection in self._idle:
            self._idle.remove(connection)

    def _sweep(self) -> None:
        oldest = self._loop.time() - self.idle_timeout
        for connection in [c for c in self._idle if c.idle_since < oldest]:
            connection.close()
        for shared in [c for c in self._h2 if not c.streams and c.idle_since < oldest]:
            shared.close()
        idle = self._idle or any(not c.streams for c in self._h2)
        self._sweeper = self._loop.call_later(self.idle_timeout, self._sweep) if idle else None

    def retire(self) -> None:
        """The address left the cluster: close what is idle, pool nothing more, and
        answer the requests waiting here."""
        self.retired = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        for shared in list(self._h2):
            if not shared.streams:
                shared.close()  # the others close when their last stream ends
        waiting, self._streams_waiting = self._streams_waiting, collections.deque()
        for waiter in waiting:
            if waiter.wants_upstream:
                waiter.on_upstream_failure(503, "UF", "upstream endpoint removed")
        while (user := self._next_waiter()) is not None:
            user.on_upstream_failure(503, "UF", "upstream endpoint removed")
        if self.cap is not None and self in self.cap.pools:
            self.cap.pools.remove(self)

    async def close(self) -> None:
        while (user := self._next_waiter()) is not None:
            user.on_upstream_failure(503, "UF", "proxy closing")
        while self._streams_waiting:
            waiter = self._streams_waiting.popleft()
            if waiter.wants_upstream:
                waiter.on_upstream_failure(503, "UF", "proxy closing")
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._connecting):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connection in list(self._all):
            connection.close()
        self._idle.clear()
