"""One stream of an HTTP/2 client connection: the ``Downstream`` of its exchange.

It turns the exchange's response messages into HEADERS, DATA and trailers
within the client's windows (what does not fit waits in the stream; past
``STREAM_BUFFER`` the app's side is paused), and feeds the exchange the
request's DATA, reopening the client's window only as the body moves on. A
body past its ``content-length`` is a stream error (RFC 9113 §8.1.1).

It knows its connection only as a ``StreamHost``.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Protocol

from pillion.h2 import events as ev
from pillion.h2.connection import H2Connection, take
from pillion.http.h2fields import response_fields, trailer_fields
from pillion.http.headers import HeaderPairs, Headers
from pillion.http.request import RequestHead
from pillion.proxy.exchange import ConnectionHost, Exchange

__all__ = ["STREAM_BUFFER", "Http2Stream", "StreamHost"]

STREAM_BUFFER: Final = 256 * 1024  # response bytes a stream holds before the app is paused
_TEXT: Final = (b"content-type", b"text/plain; charset=utf-8")


class StreamHost(Protocol):
    """What a stream needs of its connection."""

    h2: H2Connection
    host: ConnectionHost
    closed: bool
    draining: bool
    write_paused: bool
    client_ip: bytes
    identity: bytes | None
    original: tuple[str, int] | None

    def ack(self, size: int, stream_id: int) -> None:
        """Reopen the client's windows by ``size`` consumed bytes."""

    def reset(self, stream_id: int, code: int) -> None: ...

    def flush(self) -> None: ...

    def cork(self) -> None: ...

    def uncork(self) -> None: ...

    def blocked(self, stream: Http2Stream) -> None:
        """The stream waits for a window."""

    def stream_done(self, stream: Http2Stream) -> None:
        """Sent all, and its exchange ended."""


class Http2Stream:
    """One stream of an ``Http2Connection``: the ``Downstream`` of its exchange."""

    __slots__ = (
        "conn",
        "ending",
        "exchange",
        "finished",
        "head",
        "out",
        "out_size",
        "paused",
        "received",
        "request_ended",
        "reset",
        "sent_end",
        "stream_id",
        "trailers",
        "unacked",
        "upstream_paused",
    )

    def __init__(self, conn: StreamHost, stream_id: int, head: RequestHead) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.head = head
        self.exchange: Exchange | None = None
        self.out: deque[bytes] = deque()  # response body waiting for window
        self.out_size = 0
        self.ending = False  # the response's end is queued behind ``out``
        self.trailers: Headers | None = None
        self.sent_end = False  # END_STREAM sent (or the stream reset)
        self.finished = False  # the exchange ended
        self.request_ended = False
        self.reset = False
        self.received = 0  # request body bytes
        self.paused = False  # the app's side is full: stop reopening the window
        self.unacked = 0
        self.upstream_paused = False

    # -- Peer --

    @property
    def client_ip(self) -> bytes:
        return self.conn.client_ip

    @property
    def identity(self) -> bytes | None:
        return self.conn.identity

    @property
    def original(self) -> tuple[str, int] | None:
        return self.conn.original

    @property
    def draining(self) -> bool:
        return self.conn.draining

    # -- the request, from the connection --

    def on_data(self, data: bytes, flow_length: int) -> None:
        exchange = self.exchange
        conn = self.conn
        if exchange is None or exchange.done or self.request_ended:
            conn.ack(flow_length, self.stream_id)
            return
        self.received += len(data)
        head = self.head
        if head.body == "length" and self.received > head.content_length:
            self._malformed("body longer than its content-length")
            return
        limit = conn.host.parser_limits.max_body_size
        if limit and self.received > limit:
            conn.ack(flow_length, self.stream_id)
            exchange.fail_request(413, "request body too large")
            return
        exchange.on_body(data)
        if self.paused:
            self.unacked += flow_length
        else:
            conn.ack(flow_length, self.stream_id)

    def on_end(self) -> None:
        self.request_ended = True
        exchange = self.exchange
        if exchange is None or exchange.done:
            return
        head = self.head
        if head.body == "length" and self.received != head.content_length:
            self._malformed("body shorter than its content-length")
            return
        exchange.on_request_complete()

    def _malformed(self, reason: str) -> None:
        """A stream error (RFC 9113 §8.1.1): the app's side is dropped, the stream reset."""
        exchange = self.exchange
        self.sent_end = True
        self.conn.reset(self.stream_id, ev.PROTOCOL_ERROR)
        if exchange is not None and not exchange.done:
            exchange.fail_request(400, reason)

    # -- Downstream: the response --

    def send_continue(self) -> None:
        pass  # HTTP/2 requests never wait for a 100 here (``expect_continue`` is off)

    def send_head(
        self, exchange: Exchange, status: int, headers: Headers, body: str, length: int
    ) -> None:
        if self.sent_end:
            return
        end = body == "none" or exchange.head.method == b"HEAD"
        fields = response_fields(status, headers, length if body == "length" else -1)
        self.conn.h2.send_headers(self.stream_id, fields, end_stream=end)
        if end:
            self.sent_end = True
        self.conn.flush()

    def send_body(self, data: bytes) -> None:
        if self.sent_end or not data:
            return
        self.out.append(data)
        self.out_size += len(data)
        self.pump()

    def send_end(self, trailers: Headers | None) -> None:
        if self.sent_end:
            return
        self.ending = True
        self.trailers = trailer_fields(trailers) if trailers else None
        self.pump()

    def send_reply(
        self, exchange: Exchange, status: int, body: bytes, headers: HeaderPairs = ()
    ) -> None:
        if self.sent_end:
            return
        typed = any(name == b"content-type" for name, _ in headers)
        fields = response_fields(status, headers if typed else (_TEXT, *headers), len(body))
        self.conn.h2.send_headers(self.stream_id, fields, end_stream=not body)
        if body:
            self.out.append(body)
            self.out_size += len(body)
            self.ending = True
            self.pump()
        else:
            self.sent_end = True
            self.conn.flush()

    def send_switch(self, headers: Headers, upgrade: bytes) -> None:
        raise AssertionError("no upgrade over HTTP/2: the gate never admits one")

    def send_tunnel(self, data: bytes) -> None:
        raise AssertionError("no tunnel over HTTP/2")

    def tunnel_opened(self, exchange: Exchange) -> None:
        raise AssertionError("no tunnel over HTTP/2")

    def cork(self) -> None:
        self.conn.cork()

    def uncork(self) -> None:
        self.conn.uncork()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        if self.unacked:
            unacked, self.unacked = self.unacked, 0
            self.conn.ack(unacked, self.stream_id)
            self.conn.flush()

    def exchange_done(self, exchange: Exchange) -> None:
        conn = self.conn
        conn.host.observer.finished(exchange)
        self.finished = True
        if not self.sent_end and (exchange.aborted or not (self.ending or self.out)):
            # broken off (or never answered): the client must not take it as whole
            self.sent_end = True
            self.out.clear()
            conn.reset(self.stream_id, ev.INTERNAL_ERROR)
            conn.flush()
        if self.sent_end:
            self._over()

    # -- sending within the client's windows --

    def pump(self, frames: int = 0) -> bool:
        """Send what the windows allow (at most ``frames`` DATA frames, 0: no
        limit); True when it stopped at that limit with more to send."""
        conn = self.conn
        if self.sent_end or conn.closed:
            return False
        h2 = conn.h2
        out = self.out
        limited = False
        if out and not conn.write_paused:
            stream_id = self.stream_id
            frame = h2.max_outbound_frame_size
            sent = 0
            while out:
                if frames and sent == frames:
                    limited = True
                    break
                sent += 1
                window = h2.local_flow_control_window(stream_id)
                if window <= 0:
                    conn.blocked(self)
                    break
                data = take(out, min(window, frame))
                self.out_size -= len(data)
                last = not out and self.ending and self.trailers is None
                h2.send_data(stream_id, data, end_stream=last)
                if last:
                    self.sent_end = True
        if not out and self.ending and not self.sent_end:
            if self.trailers is not None:
                h2.send_headers(self.stream_id, self.trailers, end_stream=True)
            else:
                h2.send_data(self.stream_id, b"", end_stream=True)
            self.sent_end = True
        self._pace_upstream()
        conn.flush()
        if self.sent_end:
            if not self.request_ended:
                conn.reset(self.stream_id, ev.NO_ERROR)  # the rest is not needed
            if self.finished:
                self._over()
        return limited

    def _pace_upstream(self) -> None:
        exchange = self.exchange
        upstream = exchange.upstream if exchange is not None else None
        if upstream is None:
            return
        if self.out_size > STREAM_BUFFER:
            if not self.upstream_paused:
                self.upstream_paused = True
                upstream.pause_reading()
        elif self.upstream_paused:
            self.upstream_paused = False
            upstream.resume_reading()

    def _over(self) -> None:
        self.exchange = None  # (it refers to this stream: freed now, not by the collector)
        self.conn.stream_done(self)
