"""One HTTP/1.1 client connection: parse requests, run their exchanges in order,
write back.

Pipelined requests queue behind the active one (reading pauses while any wait,
which bounds what is buffered). A malformed or over-limit request is answered
with its status and the connection closed, after the responses already owed;
nothing of it reaches the app. Timers: ``idle`` between requests, ``header``
from a request's first byte to the end of its headers (408).

After a request whose upgrade the parser saw (no body), what the client sends is
held, not parsed, until its exchange is over: if the app switched protocols the
held bytes are the tunnel's; otherwise they are parsed as the next request, so
a request smuggled behind a refused upgrade still meets the gate.

The connection knows its listener only as a ``ConnectionHost``.
"""

from __future__ import annotations

import asyncio
import typing
from collections import deque
from time import perf_counter
from typing import Final

from pillion.http.errors import RequestError
from pillion.http.headers import HeaderPairs, Headers, connection_tokens
from pillion.http.request import RequestHead, RequestParser
from pillion.http.serialize import (
    CONTINUE,
    LAST_CHUNK,
    chunk,
    head,
    local_response,
    reply,
    status_line,
)
from pillion.http.sniff import HTTP2_PREFACE as PREFACE
from pillion.proxy import flags
from pillion.proxy.exchange import ConnectionHost, Exchange

__all__ = ["ConnectionHost", "Http1Connection"]

# Reasons to stop reading from the client, as bits: reading resumes when none is left.
_PAUSE_BUFFER: Final = 1  # the app's side is not ready for more request body
_PAUSE_PIPELINE: Final = 2  # requests are queued behind the active one

_PAUSE_HELD: Final = 4  # bytes after an upgrade request are held, up to _HELD_LIMIT
_HELD_LIMIT: Final = 64 * 1024

DRAIN_IDLE_GRACE: Final = 1.0  # seconds an idle keep-alive connection lives once draining
LINGER_TIME: Final = 5.0  # seconds an answered connection reads and drops what the client sends


class Http1Connection(asyncio.Protocol):
    __slots__ = (
        "_chunked",
        "_deadline",
        "_held",
        "_out",
        "_paused",
        "_pending_error",
        "_sniffing",
        "_stopped_parsing",
        "_timer",
        "_timer_kind",
        "_tunnel",
        "client_ip",
        "closed",
        "draining",
        "host",
        "identity",
        "original",
        "parser",
        "queue",
        "receiving",
        "transport",
    )

    def __init__(self, host: ConnectionHost) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser(self, host.parser_limits)
        self.client_ip = b"unknown"
        self.identity: bytes | None = None  # from the client certificate (TLS listeners)
        self.original: tuple[str, int] | None = None  # where a captured connection was sent
        self.queue: deque[Exchange] = deque()
        self.receiving: Exchange | None = None
        self.closed = False
        self.draining = host.draining
        self._held: list[bytes] = []  # after an upgrade request, until its exchange ends
        self._tunnel: Exchange | None = None  # the exchange whose 101 made this a tunnel
        self._chunked = False  # the response being written is chunked
        self._paused = 0
        self._out: list[bytes] | None = None
        self._pending_error: RequestError | None = None
        self._sniffing = host.http2 is not None  # the first bytes may be the HTTP/2 preface
        self._stopped_parsing = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # loop time at which the armed timer is due
        self._timer_kind = ""

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self.host.connection_opened(self):
            self.closed = True
            self.transport.abort()  # over max_connections
            return
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0]).encode()
        self._arm("idle")

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._tunnel is not None:
            self._tunnel.on_client_bytes(data)
            return
        if self.parser.upgraded:  # after an upgrade request: held until it is over
            self._hold(data)
            return
        if self._stopped_parsing:
            return
        if self._sniffing:
            sniffed = self._http2_preface(data)
            if sniffed is None:
                return
            data = sniffed
        if self._timer_kind in ("idle", "drain"):
            self._disarm()
        parser = self.parser
        try:
            parser.feed(data)
        except RequestError as error:
            self._reject(error)
            return
        if parser.upgraded:
            self._hold(parser.take_held())
            if not self.queue and not self.closed:
                self._parse_held()  # its exchange ended already (refused): not upgraded
            return
        if parser.partial_head:
            if self._timer_kind != "header":
                self._arm("header")
        elif not self.queue and self._timer_kind == "":
            self._arm("drain" if self.draining else "idle")

    def eof_received(self) -> bool | None:
        if self._tunnel is not None:
            self._tunnel.end_tunnel()
            return False
        if self.receiving is not None or self.parser.partial_head or not self.queue:
            return False  # gone mid-request, or idle: close (connection_lost follows)
        # Half-closed after whole requests: they are still answered, then we close.
        self._stopped_parsing = True
        for exchange in self.queue:
            exchange.close_after = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        queue, self.queue = self.queue, deque()
        host = self.host
        for exchange in queue:
            if exchange.on_downstream_lost():
                host.observer.finished(exchange)
        host.connection_closed(self)

    def pause_writing(self) -> None:
        # The client reads slower than the app writes: stop reading from the app.
        upstream = self.queue[0].upstream if self.queue else None
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        upstream = self.queue[0].upstream if self.queue else None
        if upstream is not None:
            upstream.resume_reading()

    # -- RequestHandler, from the parser --

    def on_request(self, head: RequestHead) -> None:
        self._disarm()
        exchange = Exchange(self, head, perf_counter(), self.host.exchange_settings)
        if self.draining:
            exchange.close_after = True
        self.receiving = exchange
        queue = self.queue
        queue.append(exchange)
        if len(queue) == 1:
            exchange.start()
        else:
            self._pause(_PAUSE_PIPELINE)

    def on_request_body(self, data: bytes) -> None:
        if self.receiving is not None:
            self.receiving.on_body(data)

    def on_request_end(self) -> None:
        exchange, self.receiving = self.receiving, None
        if exchange is None:
            return
        if exchange.close_after:
            self._stopped_parsing = True  # nothing after "Connection: close" is read
        exchange.on_request_complete()

    # -- from the active exchange --

    def exchange_done(self, exchange: Exchange) -> None:
        self.host.observer.finished(exchange)
        queue = self.queue
        if queue and queue[0] is exchange:
            queue.popleft()
        elif exchange in queue:
            queue.remove(exchange)
        cut_short = self.receiving is exchange  # answered before its request was read
        if cut_short:
            self.receiving = None
        if exchange.close_after:
            if cut_short:
                self._linger()
            else:
                self.close()
            return
        if self.parser.upgraded and not queue:
            self._parse_held()  # not upgraded after all: what was held is HTTP
            if self.closed or self.queue:
                return
        if queue:
            queue[0].start()
            if len(queue) == 1:
                self._resume(_PAUSE_PIPELINE)
        elif self._pending_error is not None:
            self._answer_error(self._pending_error)
        elif not self.parser.partial_head:
            self._arm("drain" if self.draining else "idle")

    # -- the response of the active exchange, framed for HTTP/1.1 --

    def send_continue(self) -> None:
        self.write(CONTINUE)

    def send_head(
        self, exchange: Exchange, status: int, headers: Headers, body: str, length: int
    ) -> None:
        """Its length when the app gave one; else chunked to an HTTP/1.1 client,
        and to an HTTP/1.0 one the body ends when the connection closes."""
        extra = b""
        self._chunked = False
        if body == "length":
            extra = b"content-length: %d\r\n" % length
        elif body == "none" or exchange.head.method == b"HEAD":
            pass
        elif exchange.head.version == b"1.1":
            self._chunked = True
            extra = b"transfer-encoding: chunked\r\n"
        else:
            exchange.close_after = True
        if exchange.close_after:
            extra += b"connection: close\r\n"
        self.write(head(status_line(status), headers, extra))

    def send_body(self, data: bytes) -> None:
        self.write(chunk(data) if self._chunked else data)

    def send_end(self, trailers: Headers | None) -> None:
        """The last chunk, with the app's trailers when the client asked for them
        (``TE: trailers``, as gRPC clients send); otherwise they are dropped."""
        if self._chunked:
            self._chunked = False
            if trailers and self.queue and _wants_trailers(self.queue[0].head):
                self.write(head(b"0\r\n", trailers))
            else:
                self.write(LAST_CHUNK)

    def send_reply(
        self, exchange: Exchange, status: int, body: bytes, headers: HeaderPairs = ()
    ) -> None:
        self.write(reply(status, body, close=exchange.close_after, headers=headers))

    def send_switch(self, headers: Headers, upgrade: bytes) -> None:
        extra = b"connection: upgrade\r\nupgrade: %s\r\n" % upgrade
        self.write(head(status_line(101), headers, extra))

    def send_tunnel(self, data: bytes) -> None:
        self.write(data)

    def write(self, data: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(data)
        elif not self.closed and self.transport is not None:
            self.transport.write(data)

    def cork(self) -> None:
        """Collect writes until ``uncork``: one syscall for a response's head and body."""
        if self._out is None:
            self._out = []

    def uncork(self) -> None:
        out, self._out = self._out, None
        if out and not self.closed and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def pause_reading(self) -> None:
        self._pause(_PAUSE_BUFFER)

    def resume_reading(self) -> None:
        self._resume(_PAUSE_BUFFER)

    def tunnel_opened(self, exchange: Exchange) -> None:
        self._tunnel = exchange
        held, self._held = self._held, []
        for data in held:
            exchange.on_client_bytes(data)
        self._resume(_PAUSE_HELD)

    def _http2_preface(self, data: bytes) -> bytes | None:
        """HTTP/2 with prior knowledge? Then the connection is handed over (None);
        the preface's beginning is kept (None) until it is known; else the bytes to
        parse as HTTP/1.1 (with any kept)."""
        if self._held:
            data = b"".join(self._held) + data
            self._held = []
        if len(data) < len(PREFACE) and PREFACE.startswith(data):
            self._held.append(data)
            return None
        self._sniffing = False
        if not data.startswith(PREFACE):
            return data
        self._cancel_timer()
        self.closed = True  # the HTTP/2 connection takes the transport and the count
        assert self.transport is not None
        self.host.take_over_http2(self, self, self.transport, data)
        return None

    # -- bytes after an upgrade request --

    def _hold(self, data: bytes) -> None:
        if not data:
            return
        self._held.append(data)
        if sum(map(len, self._held)) > _HELD_LIMIT:
            self._pause(_PAUSE_HELD)

    def _parse_held(self) -> None:
        """The upgrade did not happen: parse the held bytes as HTTP/1.1."""
        held, self._held = self._held, []
        self.parser.resume_after_upgrade()
        self._resume(_PAUSE_HELD)
        if held:
            self.data_received(b"".join(held))

    # -- from the listener (``Listening``) --

    def begin_drain(self) -> None:
        """Finish what is in flight with ``Connection: close``; close idle ones soon.

        An idle connection gets ``DRAIN_IDLE_GRACE`` before it is closed: a client
        that sends its next request in that moment is answered (with
        ``Connection: close``) instead of finding the connection gone.
        """
        self.draining = True
        for exchange in self.queue:
            exchange.close_after = True
        if not self.queue and not self.parser.partial_head:
            self._arm("drain")

    def close(self) -> None:
        if not self.closed:
            self.uncork()
            self.closed = True
            self._cancel_timer()
            if self.transport is not None:
                self.transport.close()  # flushes what was written first

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- rejections and timers --

    def _reject(self, error: RequestError) -> None:
        self._stopped_parsing = True
        self._disarm()
        exchange = self.receiving
        if exchange is not None and not exchange.done:
            exchange.fail_request(error.status, error.reason)  # its body was bad
            return
        self.host.observer.rejected(self, error.status, flags.DPE)
        if self.queue:
            self._pending_error = error  # answered after the responses already owed
        else:
            self._answer_error(error)

    def _answer_error(self, error: RequestError) -> None:
        self.write(local_response(error.status, error.reason))
        self._linger()

    def _linger(self) -> None:
        """Close after an answer while the client may still be sending (a slow head,
        a body not read): closed at once, the client's next bytes would meet a reset,
        and a reset can discard the answer before the client reads it. So, as nginx's
        lingering close: the answer is sent with a FIN after it, what still comes is
        read and dropped, and the connection closes when the client does, or after
        ``LINGER_TIME``. TLS cannot half-close: it closes at once."""
        transport = self.transport
        if self.closed or transport is None:
            return
        if not transport.can_write_eof():
            self.close()
            return
        self.uncork()
        self._stopped_parsing = True  # what comes is dropped
        self._resume(self._paused)
        transport.write_eof()
        self._arm("linger")

    def _arm(self, kind: str) -> None:
        """Start the ``kind`` timer. The timer handle outlives its arming: a request
        moves the deadline, and only a deadline earlier than the handle's needs a new
        one; a handle that fires early re-arms for what is left (no ``call_later``
        and ``cancel`` per request on a keep-alive connection)."""
        host = self.host
        if kind == "header":
            delay = host.header_timeout
        elif kind == "drain":
            delay = min(DRAIN_IDLE_GRACE, host.idle_timeout)
        elif kind == "linger":
            delay = LINGER_TIME
        else:
            delay = host.idle_timeout
        loop = host.loop
        deadline = loop.time() + delay
        self._deadline = deadline
        self._timer_kind = kind
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        self._timer_kind = ""  # the handle, if any, finds nothing to do when it fires

    def _on_timer(self) -> None:
        self._timer = None
        kind = self._timer_kind
        if kind == "" or self.closed:
            return
        loop = self.host.loop
        if loop.time() < self._deadline:  # moved since this handle was made
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        self._timer_kind = ""
        if kind == "header" and self.parser.partial_head:
            self._stopped_parsing = True
            self.host.observer.rejected(self, 408, flags.DT)
            if self.queue:
                self._pending_error = RequestError(408, "request header timeout")
            else:
                self._answer_error(RequestError(408, "request header timeout"))
        elif not self.queue:
            self.close()  # idle keep-alive connection

    def _cancel_timer(self) -> None:
        self._timer_kind = ""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        was = self._paused
        self._paused &= ~reason
        if was and not self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()


def _wants_trailers(request: RequestHead) -> bool:
    return any(
        name.lower() == b"te" and b"trailers" in connection_tokens(value)
        for name, value in request.headers
    )
