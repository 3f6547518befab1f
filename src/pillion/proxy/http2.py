"""One HTTP/2 client connection: each stream a request, each request an exchange.

The connection comes by ALPN (``h2`` on a TLS listener) or by prior knowledge
(a cleartext connection that opens with the HTTP/2 preface, on the same port as
HTTP/1.1). ``pillion.h2`` keeps the protocol state; this module moves bytes and maps
its events onto exchanges: a stream's HEADERS become a ``RequestHead``
(``h2fields``) and an ``Exchange`` whose downstream is the ``Http2Stream``, so
the gate, routes, retries, timeouts, the access log and the metrics are the
ones HTTP/1.1 requests have, per stream.

Flow control follows what was consumed: request body is acknowledged (its
window reopened) once it went on to the app, and not while the app's side is
paused; response body is sent as the client's windows allow, the rest waits in
the stream (``http2_stream``), and past a buffer the app's side is paused. So a slow
reader holds at most a window and a buffer per stream, whatever the body size.

What a stream does wrong ends that stream: a malformed request is reset with
``PROTOCOL_ERROR`` (``h2fields``), a body over its ``content-length`` too;
over-limit requests are answered (431, 414, 413). What threatens the connection
ends it: protocol errors (``pillion.h2.connection``), a CONTINUATION flood (64
frames per header block) or an HPACK bomb past twice the header limit, and, with
``GOAWAY ENHANCE_YOUR_CALM``: rapid resets (CVE-2023-44487: more than
``_RESET_ALLOWANCE`` streams cancelled by the client before their response,
and more than half of all its streams), SETTINGS or PING floods, control frames
piling up unread, and a peer that keeps its windows shut (``idle_timeout``).

Drain: a ``GOAWAY`` naming the last stream taken; those streams finish, new
ones are refused, and the connection closes when the last one is done.
"""

from __future__ import annotations

import asyncio
import typing
from time import perf_counter
from typing import Final

from pillion.h2 import events as ev
from pillion.h2.connection import H2Connection, ProtocolError
from pillion.h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from pillion.http.errors import MalformedStream, RequestError
from pillion.http.h2fields import request_head, response_fields
from pillion.proxy import flags
from pillion.proxy.exchange import ConnectionHost, Exchange, Http2Settings
from pillion.proxy.http2_stream import STREAM_BUFFER, Http2Stream

__all__ = ["Http2Connection"]

_RESET_ALLOWANCE: Final = 100  # client-cancelled streams tolerated before the ratio applies
_FLOOD_WINDOW: Final = 10.0  # seconds over which SETTINGS and PING frames are counted
_MAX_SETTINGS: Final = 100  # SETTINGS frames per window
_MAX_PINGS: Final = 1000  # PING frames per window
_MAX_UNREAD: Final = 1 << 20  # bytes written and not taken by the client, beyond its windows
_HEADER_LIST_SLACK: Final = 2  # an HPACK block decoding to more than this times the limit is a bomb
_TEXT: Final = (b"content-type", b"text/plain; charset=utf-8")


class Http2Connection(asyncio.Protocol):
    """An HTTP/2 connection of a listener (its ``ConnectionHost``)."""

    def __init__(
        self,
        host: ConnectionHost,
        settings: Http2Settings,
        *,
        client_ip: bytes = b"unknown",
        identity: bytes | None = None,
        original: tuple[str, int] | None = None,
    ) -> None:
        self.host = host
        self.settings = settings
        limit = host.parser_limits.max_header_size
        self.h2 = H2Connection(
            client_side=False,
            max_concurrent_streams=settings.max_concurrent_streams,
            stream_window=settings.stream_window,
            connection_window=settings.connection_window,
            max_header_list_size=limit,
            # up to twice the limit, the request is answered 431 on its stream
            # (``h2fields``); beyond, the block is a bomb and ends the connection
            header_list_limit=max(limit * _HEADER_LIST_SLACK, 65536),
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Http2Stream] = {}
        self.client_ip = client_ip
        self.identity = identity  # from the client certificate (TLS listeners)
        self.original = original
        self.closed = False
        self.draining = host.draining
        self.write_paused = False
        self._corked = 0
        self._flushing = False  # a write is scheduled
        self._opened = 0  # streams the client opened
        self._cancelled = 0  # ... and reset before their response was complete
        self._flood_since = 0.0
        self._settings_seen = 0
        self._pings_seen = 0
        self._blocked: set[Http2Stream] = set()  # waiting for the client's windows
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind = ""

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        if not self.host.connection_opened(self):
            self.closed = True
            self.transport.abort()  # over max_connections
            return
        if self.client_ip == b"unknown":
            peer = transport.get_extra_info("peername")
            if peer:
                self.client_ip = str(peer[0]).encode()
        self.h2.initiate_connection()
        self._flood_since = self.host.loop.time()
        self.flush()
        self._arm("idle")
        if self.draining:
            self.begin_drain()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except ProtocolError:
            self._fail()  # its GOAWAY is queued
            return
        self._corked += 1
        try:
            for event in events:
                if self.closed:
                    break
                self._dispatch(event)
        finally:
            self._corked -= 1
        self.flush()

    def eof_received(self) -> bool | None:
        return False  # a client that half-closes HTTP/2 is gone

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        streams, self.streams = self.streams, {}
        host = self.host
        for stream in streams.values():
            exchange = stream.exchange
            if exchange is not None and exchange.on_downstream_lost():
                host.observer.finished(exchange)
        host.connection_closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._arm("stall")

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._timer_kind == "stall":
            self._disarm()
        for stream in list(self.streams.values()):
            if stream.out:
                stream.pump()
        self.flush()

    # -- the connection's events --

    def _dispatch(self, event: object) -> None:
        if isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                self.ack(event.flow_controlled_length, event.stream_id)
            else:
                stream.on_data(event.data, event.flow_controlled_length)
                if event.stream_ended and stream.exchange is not None:
                    stream.on_end()
        elif isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.request_ended:
                stream.on_end()
        elif isinstance(event, WindowUpdated):
            self._on_window(event.stream_id)
        elif isinstance(event, StreamReset):
            self._on_reset(event.stream_id)
        elif isinstance(event, RemoteSettingsChanged):
            self._settings_seen += 1
            self._check_floods()
            if ev.INITIAL_WINDOW_SIZE in event.changed_settings:
                self._on_window(0)
        elif isinstance(event, PingReceived):
            self._pings_seen += 1
            self._check_floods()
        elif isinstance(event, ConnectionTerminated):
            self.draining = True  # the client's GOAWAY: no new streams either way
            if not self.streams:
                self.close()

    def _on_request(self, event: RequestReceived) -> None:
        stream_id = event.stream_id
        self._opened += 1
        host = self.host
        if self.draining:
            self.reset(stream_id, ev.REFUSED_STREAM)
            return
        ended = event.stream_ended
        try:
            head = request_head(event.headers, ended, host.parser_limits)
        except MalformedStream:
            self.reset(stream_id, ev.PROTOCOL_ERROR)
            host.observer.rejected(self, 400, flags.DPE)
            return
        except RequestError as error:
            host.observer.rejected(self, error.status, flags.DPE)
            self._refuse(stream_id, error, ended)
            return
        if self._timer_kind == "idle":
            self._disarm()
        stream = Http2Stream(self, stream_id, head)
        self.streams[stream_id] = stream
        exchange = Exchange(stream, head, perf_counter(), host.exchange_settings)
        stream.exchange = exchange
        exchange.start()
        if ended:
            stream.on_end()

    def _refuse(self, stream_id: int, error: RequestError, ended: bool) -> None:
        """An over-limit request: answered with its status, the rest of it refused."""
        body = f"{error.reason}\n".encode()
        fields = response_fields(error.status, (_TEXT,), len(body))
        self.h2.send_headers(stream_id, fields)
        self.h2.send_data(stream_id, body, end_stream=True)
        if not ended:
            self.reset(stream_id, ev.NO_ERROR)  # stop sending the body

    def _on_window(self, stream_id: int) -> None:
        """A window reopened (the connection's, or a stream's): the streams waiting
        for a window take turns, a frame each, so that one large response cannot
        take all of the connection's window from the others."""
        if self._timer_kind == "stall":
            self._disarm()
        if stream_id:
            one = self.streams.get(stream_id)
            if one is not None and one.out:
                self._blocked.add(one)
        waiting = list(self._blocked)
        self._blocked = set()
        while waiting and self.h2.outbound_flow_control_window > 0:
            waiting = [stream for stream in waiting if stream.pump(frames=1)]
        for stream in waiting:
            stream.pump()  # (the window is spent: each marks itself blocked)
        if self._blocked and self._timer is None:
            self._arm("stall")

    def _on_reset(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        stream.reset = stream.sent_end = True
        self._blocked.discard(stream)
        exchange = stream.exchange
        if exchange is not None and exchange.on_downstream_lost():
            self.host.observer.finished(exchange)
            self._cancelled += 1
            if self._cancelled > _RESET_ALLOWANCE and self._cancelled * 2 > self._opened:
                self._calm()  # rapid reset
                return
        self._stream_gone()

    # -- for the streams --

    def cork(self) -> None:
        self._corked += 1

    def uncork(self) -> None:
        self._corked -= 1
        if not self._corked:
            self.flush()

    def flush(self) -> None:
        """Write what the connection queued, once this turn of the event loop is over: the
        frames of every stream answered meanwhile go out in one write."""
        if not self._flushing and not self._corked and not self.closed:
            self._flushing = True
            self.host.loop.call_soon(self._write)

    def _write(self) -> None:
        self._flushing = False
        if self.transport is None or self.closed:
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)
            if self.transport.get_write_buffer_size() > _MAX_UNREAD + STREAM_BUFFER:
                self._calm()  # control frames piling up: the client does not read

    def blocked(self, stream: Http2Stream) -> None:
        self._blocked.add(stream)
        if self._timer is None:
            self._arm("stall")

    def stream_done(self, stream: Http2Stream) -> None:
        """The stream is over on both sides (sent all, and its exchange ended)."""
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        self._blocked.discard(stream)
        self._stream_gone()

    def _stream_gone(self) -> None:
        if self.streams:
            return
        if self.draining:
            self.close()
        elif self._timer is None or self._timer_kind == "stall":
            self._arm("idle")

    def ack(self, size: int, stream_id: int) -> None:
        self.h2.acknowledge_received_data(size, stream_id)

    def reset(self, stream_id: int, code: int) -> None:
        self.h2.reset_stream(stream_id, code)  # (nothing if it is closed already)

    # -- from the listener (``Listening``) --

    def begin_drain(self) -> None:
        """GOAWAY with the last stream taken; close once those are done."""
        self.draining = True
        if self.closed or self.transport is None:
            return
        self._goaway(ev.NO_ERROR)
        if not self.streams:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self._write()
            self.closed = True
            self._disarm()
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- endings --

    def _goaway(self, code: int) -> None:
        """A GOAWAY naming the last stream taken: the streams up to it can still
        be answered."""
        self.h2.send_goaway(code)
        self._write()

    def _calm(self) -> None:
        self._goaway(ev.ENHANCE_YOUR_CALM)
        self.host.observer.rejected(self, 429, flags.DPE)
        self._fail()

    def _fail(self) -> None:
        """The connection is broken: write what is queued (its GOAWAY), close."""
        if self.transport is not None and not self.closed:
            data = self.h2.data_to_send()
            if data:
                self.transport.write(data)
        self.closed = True
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    def _check_floods(self) -> None:
        now = self.host.loop.time()
        if now - self._flood_since > _FLOOD_WINDOW:
            self._flood_since = now
            self._settings_seen = self._pings_seen = 0
        elif self._settings_seen > _MAX_SETTINGS or self._pings_seen > _MAX_PINGS:
            self._calm()

    # -- timers --

    def _arm(self, kind: str) -> None:
        self._disarm()
        self._timer = self.host.loop.call_later(self.host.idle_timeout, self._on_timer)
        self._timer_kind = kind

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_kind = ""

    def _on_timer(self) -> None:
        kind = self._timer_kind
        self._timer = None
        self._timer_kind = ""
        if self.closed:
            return
        if kind == "stall" and (self._blocked or self.write_paused):
            self._goaway(ev.FLOW_CONTROL_ERROR)
            self.host.observer.rejected(self, 408, flags.DT)
            self._fail()  # the client keeps its windows shut
        elif kind == "idle" and not self.streams:
            self._goaway(ev.NO_ERROR)
            self.close()
