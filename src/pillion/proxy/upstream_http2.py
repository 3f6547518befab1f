"""HTTP/2 connections to the app: many requests at once, one stream each.

A pool whose app speaks HTTP/2 keeps a few ``Http2ClientConnection``\\ s and
gives each request a stream (``Http2UpstreamStream``, the exchange's
``UpstreamChannel``) on the first connection with room: no more streams than
the app's ``SETTINGS_MAX_CONCURRENT_STREAMS``, another connection when all
are full. The exchange sends messages; the stream turns them into HEADERS and
DATA within the app's windows, and the app's answer back into a
``ResponseHead``, body and trailers (``h2fields``).

Flow control follows what was consumed: response body is acknowledged once it
was handed to the client's side, and not while that side is paused (a slow
client); request body waits in the stream for the app's window, and past
``_STREAM_BUFFER`` the client's side is paused.

A ``GOAWAY`` from the app stops new streams on that connection; the streams
it did not process (above its last stream id), and those it refuses
(``REFUSED_STREAM``), are reported as ``UpstreamRefused``: the exchange sends
them again on another connection. A stream reset otherwise, a malformed
response, or a lost connection are failures like on HTTP/1.1 (502).
"""

from __future__ import annotations

import asyncio
import typing
from collections import deque
from typing import TYPE_CHECKING, Final, Protocol

from pillion.h2 import events as ev
from pillion.h2.connection import H2Connection, ProtocolError, take
from pillion.h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from pillion.http.errors import ResponseError, ResponseIncomplete
from pillion.http.h2fields import response_head
from pillion.proxy.channels import UpstreamRefused, UpstreamUser

if TYPE_CHECKING:
    from pillion.http.headers import Headers

__all__ = ["Http2ClientConnection", "Http2Owner", "Http2UpstreamStream"]

_STREAM_BUFFER: Final = 256 * 1024  # request bytes a stream holds before the client is paused
_STREAM_WINDOW: Final = 1 << 20  # what the app may send ahead per stream
_CONNECTION_WINDOW: Final = 16 << 20
_MOST_STREAMS: Final = 1000  # whatever the app allows, per connection


class Http2Owner(Protocol):
    """What a connection needs of its pool."""

    def stream_released(self, connection: Http2ClientConnection) -> None:
        """A stream ended: the connection has room for another."""

    def connection_ready(self, connection: Http2ClientConnection) -> None:
        """The app's first SETTINGS arrived: its stream limit is known."""

    def forget(self, connection: Http2ClientConnection) -> None:
        """The connection closed."""

    def no_new_streams(self, connection: Http2ClientConnection) -> None:
        """The app sent GOAWAY: this connection takes no new stream."""


class Http2ClientConnection(asyncio.Protocol):
    """One HTTP/2 connection to the app."""

    http2 = True

    def __init__(self, owner: Http2Owner) -> None:
        self.owner = owner
        self.h2 = H2Connection(
            client_side=True,
            max_concurrent_streams=0,  # the app opens none (no push)
            stream_window=_STREAM_WINDOW,
            connection_window=_CONNECTION_WINDOW,
            max_header_list_size=64 * 1024,
            header_list_limit=64 * 1024,
        )
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.streams: dict[int, Http2UpstreamStream] = {}
        self.closed = False
        self.goaway = False  # the app said GOAWAY: no new streams here
        self.ready = False  # the app's SETTINGS arrived (until then its limit is unknown)
        self.write_paused = False
        self.requests = 0
        self.idle_since = 0.0
        self._corked: list[UpstreamUser] | None = None
        self._flushing = False  # a write is scheduled
        self._blocked: set[Http2UpstreamStream] = set()

    @property
    def room(self) -> bool:
        """Whether another stream may be opened now."""
        limit = min(self.h2.remote_max_concurrent_streams, _MOST_STREAMS)
        return self.ready and not (self.closed or self.goaway) and len(self.streams) < limit

    def open(self, user: UpstreamUser) -> Http2UpstreamStream:
        """A new stream for ``user`` (check ``room`` first)."""
        stream = Http2UpstreamStream(self, self.h2.get_next_available_stream_id(), user)
        self.streams[stream.stream_id] = stream
        self.requests += 1
        stream.requests = self.requests
        return stream

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self._break(ResponseError(f"upstream HTTP/2 protocol error: {exc}"))
            return
        corked: list[UpstreamUser] = []
        self._corked = corked
        try:
            for event in events:
                self._dispatch(event)
        finally:
            self._corked = None
            for user in corked:
                user.uncork()
        self.flush()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner.forget(self)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.lost(ResponseIncomplete("upstream closed the connection"))

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            if stream.user is not None:
                stream.user.pause_downstream()

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            if stream.user is not None:
                stream.user.resume_downstream()
            if stream.out or stream.ending:
                stream.pump()
        self.flush()

    # -- the connection's events --

    def _dispatch(self, event: object) -> None:
        if isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                self.ack(event.flow_controlled_length, event.stream_id)
            else:
                self._cork(stream)
                stream.on_data(event.data, event.flow_controlled_length)
        elif isinstance(event, ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self._cork(stream)
                stream.on_head(event.headers, event.stream_ended)
        elif isinstance(event, StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self._cork(stream)
                stream.on_end()
        elif isinstance(event, TrailersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_trailers(event.headers)
        elif isinstance(event, WindowUpdated):
            self._on_window(event.stream_id)
        elif isinstance(event, StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_reset(event.error_code)
        elif isinstance(event, RemoteSettingsChanged):
            if ev.INITIAL_WINDOW_SIZE in event.changed_settings:
                self._on_window(0)
            if not self.ready:
                self.ready = True
                self.owner.connection_ready(self)
            elif ev.MAX_CONCURRENT_STREAMS in event.changed_settings:
                self.owner.stream_released(self)  # there may be room now
        elif isinstance(event, ConnectionTerminated):
            self._on_goaway(event.last_stream_id)

    def _cork(self, stream: Http2UpstreamStream) -> None:
        user = stream.user
        corked = self._corked
        if user is not None and corked is not None and user not in corked:
            user.cork()  # what this read produces goes to its client in one write
            corked.append(user)

    def _on_window(self, stream_id: int) -> None:
        if stream_id == 0:
            blocked, self._blocked = self._blocked, set()
            for stream in blocked:
                stream.pump()
        else:
            one = self.streams.get(stream_id)
            if one is not None:
                self._blocked.discard(one)
                one.pump()

    def _on_goaway(self, last: int) -> None:
        self.goaway = True
        self.owner.no_new_streams(self)
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last:
                stream.lost(UpstreamRefused("upstream went away before the request"))
        if not self.streams:
            self.close()

    # -- for the streams --

    def flush(self) -> None:
        """Write what the connection queued once this turn of the event loop is over: the
        requests of many clients go out in one write."""
        if not self._flushing and not self.closed:
            self._flushing = True
            self.loop.call_soon(self._write)

    def _write(self) -> None:
        self._flushing = False
        if self.transport is None or self.closed:
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)

    def ack(self, size: int, stream_id: int) -> None:
        self.h2.acknowledge_received_data(size, stream_id)

    def reset(self, stream_id: int, code: int) -> None:
        self.h2.reset_stream(stream_id, code)  # (nothing if it is closed already)
        self.flush()

    def blocked(self, stream: Http2UpstreamStream) -> None:
        self._blocked.add(stream)

    def finished(self, stream: Http2UpstreamStream) -> None:
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        self._blocked.discard(stream)
        if self.goaway and not self.streams:
            self.close()
        else:
            self.owner.stream_released(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.h2.close_connection()
            if self.transport is not None:
                self.transport.write(self.h2.data_to_send())
                self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _break(self, error: ResponseError) -> None:
        streams, self.streams = self.streams, {}
        self.closed = True
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())
            self.transport.abort()
        for stream in streams.values():
            stream.lost(error)


class Http2UpstreamStream:
    """One request to the app on an HTTP/2 connection: its ``UpstreamChannel``."""

    __slots__ = (
        "closed",
        "conn",
        "ending",
        "expected",
        "out",
        "out_size",
        "paused",
        "received",
        "requests",
        "response_ended",
        "sent_end",
        "stream_id",
        "unacked",
        "user",
        "user_paused",
    )
    http2 = True

    def __init__(self, conn: Http2ClientConnection, stream_id: int, user: UpstreamUser) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.user: UpstreamUser | None = user
        self.requests = 0
        self.closed = False
        self.out: deque[bytes] = deque()  # request body waiting for the app's window
        self.out_size = 0
        self.ending = False  # the request's end is queued behind ``out``
        self.sent_end = False
        self.response_ended = False
        self.expected = -1  # the response's content-length
        self.received = 0
        self.paused = False  # the client's side is full: stop reopening the window
        self.unacked = 0
        self.user_paused = False

    # -- UpstreamChannel --

    def send(self, head: bytes | Headers, body: list[bytes], end: bool, chunked: bool) -> None:
        assert not isinstance(head, bytes)
        conn = self.conn
        bare = end and not body
        conn.h2.send_headers(self.stream_id, head, end_stream=bare)
        if bare:
            self.sent_end = True
            conn.flush()
            return
        for data in body:
            if data:
                self.out.append(data)
                self.out_size += len(data)
        self.ending = end
        self.pump()

    def write(self, data: bytes) -> None:
        if self.closed or self.sent_end or not data:
            return
        self.out.append(data)
        self.out_size += len(data)
        self.pump()

    def end_request(self) -> None:
        if self.closed or self.sent_end:
            return
        self.ending = True
        self.pump()

    def release(self) -> None:
        """The response ended: the stream is done (cancelled if the request was not)."""
        self.user = None
        if not self.closed:
            self.closed = True
            if not self.sent_end:
                self.conn.reset(self.stream_id, ev.CANCEL)
            self.conn.finished(self)

    def close(self) -> None:
        self.user = None
        if not self.closed:
            self.closed = True
            if not (self.sent_end and self.response_ended):
                self.conn.reset(self.stream_id, ev.CANCEL)
            self.conn.finished(self)

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        if self.unacked and not self.closed:
            unacked, self.unacked = self.unacked, 0
            self.conn.ack(unacked, self.stream_id)
            self.conn.flush()

    # -- sending within the app's windows --

    def pump(self) -> None:
        if self.closed or self.sent_end:
            return
        conn = self.conn
        h2 = conn.h2
        out = self.out
        if out and not conn.write_paused:
            stream_id = self.stream_id
            frame = h2.max_outbound_frame_size
            while out:
                window = h2.local_flow_control_window(stream_id)
                if window <= 0:
                    conn.blocked(self)
                    break
                data = take(out, min(window, frame))
                self.out_size -= len(data)
                last = not out and self.ending
                h2.send_data(stream_id, data, end_stream=last)
                if last:
                    self.sent_end = True
        if not out and self.ending and not self.sent_end:
            h2.send_data(self.stream_id, b"", end_stream=True)
            self.sent_end = True
        user = self.user
        if user is not None:
            if self.out_size > _STREAM_BUFFER:
                if not self.user_paused:
                    self.user_paused = True
                    user.pause_downstream()
            elif self.user_paused:
                self.user_paused = False
                user.resume_downstream()
        conn.flush()

    # -- the response, from the connection --

    def on_head(self, fields: typing.Iterable[tuple[bytes, bytes]], ended: bool) -> None:
        user = self.user
        if user is None:
            return
        try:
            head = response_head(fields, ended)
        except ResponseError as error:
            self._fail(error, ev.PROTOCOL_ERROR)
            return
        if head.body == "length":
            self.expected = head.content_length
        user.on_response(head)

    def on_data(self, data: bytes, flow_length: int) -> None:
        user = self.user
        if user is None:
            self.conn.ack(flow_length, self.stream_id)
            return
        self.received += len(data)
        if 0 <= self.expected < self.received:
            self._fail(ResponseError("upstream sent more than its content-length"))
            return
        user.on_response_body(data)
        if self.paused:
            self.unacked += flow_length
        else:
            self.conn.ack(flow_length, self.stream_id)

    def on_trailers(self, trailers: Headers) -> None:
        if self.user is not None:
            self.user.on_response_trailers(trailers)

    def on_end(self) -> None:
        self.response_ended = True
        user = self.user
        if user is None:
            return
        if self.expected >= 0 and self.received != self.expected:
            self._fail(ResponseIncomplete("upstream sent less than its content-length"))
            return
        user.on_response_end()  # the exchange releases the stream

    def on_reset(self, code: int) -> None:
        if code == ev.REFUSED_STREAM and not self.received:
            self.lost(UpstreamRefused("upstream refused the stream"))
        else:
            self.lost(ResponseIncomplete(f"upstream reset the stream ({ev.error_name(code)})"))

    def lost(self, error: ResponseError) -> None:
        """The stream is over without a whole response."""
        user, self.user = self.user, None
        if not self.closed:
            self.closed = True
            self.conn.finished(self)
        if user is not None:
            user.on_upstream_lost(error)

    def _fail(self, error: ResponseError, code: int = ev.CANCEL) -> None:
        if not self.closed:
            self.conn.reset(self.stream_id, code)
        self.lost(error)
