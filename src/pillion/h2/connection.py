"""One HTTP/2 connection's state (RFC 9113), either side: frames in and out,
HPACK, stream states and flow-control windows. No I/O.

``receive_data`` takes bytes as they came and returns events (``pillion.h2.events``);
``send_headers``, ``send_data`` and the rest queue frames; ``data_to_send``
hands over what is queued. Only what the proxy needs is here: no server push
(refused: this side advertises ``ENABLE_PUSH`` 0 and never pushes), no
priorities (PRIORITY frames and the priority of HEADERS are read and ignored,
as RFC 9113 §5.3.2 allows), no CONNECT.

What breaks the connection raises ``ProtocolError`` after queueing a GOAWAY
with the code (RFC 9113 §5.4.1): a bad preface, a frame larger than allowed,
a frame of the wrong size or on the wrong stream, a new stream whose id is
not above the last, a header block interrupted or longer than
``_MOST_CONTINUATIONS`` frames or ``_MOST_BLOCK`` bytes, an HPACK error or a
header list past the decoder's limit, a window overrun or overflowed, a
settings value out of range. What breaks one stream resets that stream and is
reported as a ``StreamReset`` (§5.4.2): DATA or HEADERS after the peer ended
it, trailers without END_STREAM, a stream's window overflowed; a stream past
``max_concurrent_streams`` is refused (``REFUSED_STREAM``). Frames that
arrive for a stream already closed (frames in flight when it was reset) are
dropped; their DATA still returns its share of the connection's window.

Message rules (pseudo-headers, field names and values, content-length) are not
checked here: ``h2fields`` checks them, so that a malformed message is a
stream error, not the end of the connection.

Flow control: ``acknowledge_received_data`` marks bytes consumed; the windows
are reopened in WINDOW_UPDATE frames once half of a window is consumed, so that
small bodies do not cost a frame each.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NoReturn

from librt.strings import BytesWriter, read_i16_be, read_i32_be, write_i32_be

from pillion.h2 import events as ev
from pillion.h2.events import Event
from pillion.h2.hpack import Decoder, Encoder, HpackError

__all__ = ["PREFACE", "H2Connection", "ProtocolError", "StreamError", "take"]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_DATA: Final = 0x0
_HEADERS: Final = 0x1
_PRIORITY: Final = 0x2
_RST_STREAM: Final = 0x3
_SETTINGS: Final = 0x4
_PUSH_PROMISE: Final = 0x5
_PING: Final = 0x6
_GOAWAY: Final = 0x7
_WINDOW_UPDATE: Final = 0x8
_CONTINUATION: Final = 0x9

_END_STREAM: Final = 0x1
_ACK: Final = 0x1
_END_HEADERS: Final = 0x4
_PADDED: Final = 0x8
_PRIORITY_FLAG: Final = 0x20

_DEFAULT_WINDOW: Final = 65535
_MAX_WINDOW: Final = (1 << 31) - 1
_DEFAULT_FRAME: Final = 16384
_MAX_FRAME: Final = (1 << 24) - 1
_MOST_CONTINUATIONS: Final = 64  # CONTINUATION frames in one header block
_MOST_BLOCK: Final = 1 << 20  # bytes in one header block, compressed
_UNLIMITED: Final = 1 << 31


class ProtocolError(Exception):
    """The peer broke the protocol: the connection is over (a GOAWAY with
    ``code`` is queued)."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{ev.error_name(code)}: {reason}")


class StreamError(Exception):
    """This side asked for something the stream's state does not allow (a bug
    in the caller, not the peer's doing)."""


class _Stream:
    """One stream's state."""

    __slots__ = ("final", "local_closed", "recv_window", "remote_closed", "send_window", "unacked")

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.send_window = send_window  # what this side may send
        self.recv_window = recv_window  # what the peer may send
        self.unacked = 0  # consumed, not yet returned to the peer
        self.local_closed = False  # END_STREAM sent
        self.remote_closed = False  # END_STREAM received
        self.final = False  # the message's (final) head arrived: more HEADERS are trailers


def _head(out: BytesWriter, length: int, kind: int, flags: int, stream_id: int) -> None:
    """A frame header: length (24 bits), type, flags, stream id."""
    out.append(length >> 16)
    out.append((length >> 8) & 0xFF)
    out.append(length & 0xFF)
    out.append(kind)
    out.append(flags)
    write_i32_be(out, stream_id)


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    out = BytesWriter()
    _head(out, len(payload), kind, flags, stream_id)
    out.write(payload)
    return out.getvalue()


def _u32(value: int) -> bytes:
    """``value`` (below 2^31) as 4 bytes, big-endian."""
    out = BytesWriter()
    write_i32_be(out, value)
    return out.getvalue()


def _read_u32(data: bytes, at: int) -> int:
    return int(read_i32_be(data, at)) & 0xFFFFFFFF


def take(out: deque[bytes], size: int) -> bytes:
    """At most ``size`` bytes from the front of ``out`` (a body waiting for a
    window), taken off it: the next DATA frame's payload."""
    data = out[0]
    if len(data) <= size:
        out.popleft()
        return data
    out[0] = data[size:]
    return data[:size]


class H2Connection:
    """One connection: the client's (``client_side``) or the server's.

    This side's settings are fixed at creation and sent by
    ``initiate_connection``: ``max_concurrent_streams`` (0 on a client: the
    server may open none), ``stream_window`` (SETTINGS_INITIAL_WINDOW_SIZE),
    ``connection_window`` (the connection's receive window, opened past the
    protocol's 65535 by a WINDOW_UPDATE), ``max_header_list_size`` (advertised)
    and ``header_list_limit`` (the decoder's: a block decoding to more is a
    connection error; between the two, the message's own checks answer it).
    """

    def __init__(
        self,
        *,
        client_side: bool,
        max_concurrent_streams: int = 100,
        stream_window: int = _DEFAULT_WINDOW,
        connection_window: int = _DEFAULT_WINDOW,
        max_header_list_size: int = 65536,
        header_list_limit: int = 65536,
    ) -> None:
        self.client_side = client_side
        self._max_streams = max_concurrent_streams
        self._stream_window = stream_window
        self._connection_window = max(connection_window, _DEFAULT_WINDOW)
        self._max_header_list = max_header_list_size
        self.decoder = Decoder(max_header_list_size=header_list_limit)
        self.encoder = Encoder()
        self.streams: dict[int, _Stream] = {}
        self.highest_inbound_stream_id = 0
        self._next_stream_id = 1 if client_side else 2
        self._highest_outbound = 0
        # the peer's settings
        self.remote_max_concurrent_streams = _UNLIMITED
        self.max_outbound_frame_size = _DEFAULT_FRAME
        self._remote_window = _DEFAULT_WINDOW  # its SETTINGS_INITIAL_WINDOW_SIZE
        # windows of the connection
        self.outbound_flow_control_window = _DEFAULT_WINDOW
        self._recv_window = _DEFAULT_WINDOW
        self._recv_unacked = 0
        # until the peer acknowledges this side's SETTINGS, its streams may use the
        # protocol's initial window (if that is the larger)
        self._inbound_initial = max(stream_window, _DEFAULT_WINDOW)
        self._out: list[bytes] = []
        self._buffer = b""
        self._preface = not client_side  # the client's preface is still to come
        self._first_settings = True  # the peer's first frame must be SETTINGS
        self._block_stream = 0  # a header block in progress: its stream ...
        self._block: list[bytes] = []
        self._block_size = 0
        self._block_ended = False  # ... whether its HEADERS had END_STREAM
        self._continuations = 0
        self.closed = False  # a GOAWAY was sent for a connection error

    # -- the connection --

    def initiate_connection(self) -> None:
        """The preface (a client's) and this side's SETTINGS, then the
        connection's window opened to ``connection_window``."""
        settings = [
            (ev.MAX_CONCURRENT_STREAMS, self._max_streams),
            (ev.INITIAL_WINDOW_SIZE, self._stream_window),
            (ev.MAX_HEADER_LIST_SIZE, self._max_header_list),
        ]
        if self.client_side:
            settings.insert(0, (ev.ENABLE_PUSH, 0))
            self._out.append(PREFACE)
        payload = BytesWriter()
        for code, value in settings:
            payload.append(0)
            payload.append(code)
            write_i32_be(payload, value)
        self._out.append(_frame(_SETTINGS, 0, 0, payload.getvalue()))
        if self._connection_window > _DEFAULT_WINDOW:
            self._window_update(0, self._connection_window - _DEFAULT_WINDOW)
            self._recv_window = self._connection_window

    def data_to_send(self) -> bytes:
        """The frames queued since the last call."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def local_flow_control_window(self, stream_id: int) -> int:
        """What may be sent on the stream now: its window and the connection's."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        return min(stream.send_window, self.outbound_flow_control_window)

    def get_next_available_stream_id(self) -> int:
        """A new stream id (a client's), taken: the caller opens it next."""
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        return stream_id

    # -- sending --

    def send_headers(
        self,
        stream_id: int,
        fields: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
        end_stream: bool = False,
    ) -> None:
        """A message's head or trailers; on a client, a new ``stream_id`` opens it."""
        stream = self.streams.get(stream_id)
        if stream is None:
            if not self.client_side or stream_id <= self._highest_outbound:
                raise StreamError(f"stream {stream_id} is not open")
            stream = _Stream(self._remote_window, self._inbound_initial)
            self.streams[stream_id] = stream
            self._highest_outbound = stream_id
        elif stream.local_closed:
            raise StreamError(f"stream {stream_id} was ended")
        block = self.encoder.encode(fields)
        size = self.max_outbound_frame_size
        flags = _END_STREAM if end_stream else 0
        out = self._out
        if len(block) <= size:
            out.append(_frame(_HEADERS, flags | _END_HEADERS, stream_id, block))
        else:
            out.append(_frame(_HEADERS, flags, stream_id, block[:size]))
            at = size
            while at < len(block):
                piece = block[at : at + size]
                at += size
                last = _END_HEADERS if at >= len(block) else 0
                out.append(_frame(_CONTINUATION, last, stream_id, piece))
        if end_stream:
            self._end_local(stream_id, stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """One DATA frame: ``data`` within the windows and the peer's frame size."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            raise StreamError(f"stream {stream_id} is not open for sending")
        length = len(data)
        if length > min(stream.send_window, self.outbound_flow_control_window):
            raise StreamError(f"{length} bytes do not fit the window")
        if length > self.max_outbound_frame_size:
            raise StreamError(f"{length} bytes do not fit a frame")
        stream.send_window -= length
        self.outbound_flow_control_window -= length
        head = BytesWriter()
        _head(head, length, _DATA, _END_STREAM if end_stream else 0, stream_id)
        self._out.append(head.getvalue())
        if length:
            self._out.append(data)
        if end_stream:
            self._end_local(stream_id, stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RST_STREAM: the stream is over (nothing if it is already)."""
        if self.streams.pop(stream_id, None) is not None:
            self._out.append(_frame(_RST_STREAM, 0, stream_id, _u32(error_code)))

    def acknowledge_received_data(self, size: int, stream_id: int) -> None:
        """``size`` bytes of the stream's DATA (padding counted) were consumed."""
        if size <= 0:
            return
        self._recv_unacked += size
        if self._recv_unacked * 2 >= self._connection_window:
            self._window_update(0, self._recv_unacked)
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return  # nothing more comes on it: its window no longer matters
        stream.unacked += size
        if stream.unacked * 2 >= self._stream_window:
            self._window_update(stream_id, stream.unacked)
            stream.recv_window += stream.unacked
            stream.unacked = 0

    def send_goaway(self, error_code: int, last_stream_id: int = -1) -> None:
        """GOAWAY naming the last stream taken (by default, the highest the peer
        opened). The streams up to it go on; it is the caller who stops opening
        new ones and refuses the peer's."""
        last = self.highest_inbound_stream_id if last_stream_id < 0 else last_stream_id
        self._out.append(_frame(_GOAWAY, 0, 0, _u32(last) + _u32(error_code)))

    def close_connection(self) -> None:
        self.send_goaway(ev.NO_ERROR)

    def _window_update(self, stream_id: int, increment: int) -> None:
        self._out.append(_frame(_WINDOW_UPDATE, 0, stream_id, _u32(increment)))

    def _end_local(self, stream_id: int, stream: _Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            del self.streams[stream_id]

    # -- receiving --

    def receive_data(self, data: bytes) -> list[Event]:
        """The events of the frames in ``data`` (and what came before it
        unfinished); ``ProtocolError`` if the peer broke the protocol."""
        if self.closed:
            return []
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        events: list[Event] = []
        at = 0
        end = len(data)
        if self._preface:
            if end < len(PREFACE):
                if not PREFACE.startswith(data):
                    self._fail(ev.PROTOCOL_ERROR, "not the HTTP/2 preface")
                self._buffer = data
                return events
            if not data.startswith(PREFACE):
                self._fail(ev.PROTOCOL_ERROR, "not the HTTP/2 preface")
            self._preface = False
            at = len(PREFACE)
        while end - at >= 9:
            length = (data[at] << 16) | (data[at + 1] << 8) | data[at + 2]
            if length > _DEFAULT_FRAME:
                self._fail(ev.FRAME_SIZE_ERROR, f"a frame of {length} bytes")
            if end - at < 9 + length:
                break
            kind = data[at + 3]
            flags = data[at + 4]
            stream_id = (
                ((data[at + 5] & 0x7F) << 24)
                | (data[at + 6] << 16)
                | (data[at + 7] << 8)
                | data[at + 8]
            )
            payload = data[at + 9 : at + 9 + length]
            at += 9 + length
            self._frame_received(kind, flags, stream_id, payload, events)
        if at < end:
            self._buffer = data[at:]
        return events

    def _frame_received(
        self, kind: int, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if self._block_stream and kind != _CONTINUATION:
            self._fail(ev.PROTOCOL_ERROR, "a header block interrupted")
        if self._first_settings:
            if kind != _SETTINGS or flags & _ACK:
                self._fail(ev.PROTOCOL_ERROR, "the first frame is not SETTINGS")
            self._first_settings = False
        if kind == _DATA:
            self._on_data(flags, stream_id, payload, events)
        elif kind == _HEADERS:
            self._on_headers(flags, stream_id, payload, events)
        elif kind == _CONTINUATION:
            self._on_continuation(flags, stream_id, payload, events)
        elif kind == _WINDOW_UPDATE:
            self._on_window_update(stream_id, payload, events)
        elif kind == _RST_STREAM:
            self._on_rst_stream(stream_id, payload, events)
        elif kind == _SETTINGS:
            self._on_settings(flags, stream_id, payload, events)
        elif kind == _PING:
            if stream_id:
                self._fail(ev.PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                self._fail(ev.FRAME_SIZE_ERROR, "PING not of 8 bytes")
            if not flags & _ACK:
                self._out.append(_frame(_PING, _ACK, 0, payload))
                events.append(ev.PingReceived())
        elif kind == _GOAWAY:
            if stream_id:
                self._fail(ev.PROTOCOL_ERROR, "GOAWAY on a stream")
            if len(payload) < 8:
                self._fail(ev.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
            last = _read_u32(payload, 0)
            code = _read_u32(payload, 4)
            events.append(ev.ConnectionTerminated(code, last & _MAX_WINDOW))
        elif kind == _PRIORITY:
            if not stream_id:
                self._fail(ev.PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                self._reset(stream_id, ev.FRAME_SIZE_ERROR, events)
        elif kind == _PUSH_PROMISE:
            self._fail(ev.PROTOCOL_ERROR, "PUSH_PROMISE (push is off)")
        # frames of unknown types are ignored (§4.1)

    def _on_data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id:
            self._fail(ev.PROTOCOL_ERROR, "DATA on stream 0")
        length = len(payload)
        self._recv_window -= length
        if self._recv_window < 0:
            self._fail(ev.FLOW_CONTROL_ERROR, "DATA past the connection's window")
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._idle(stream_id):
                self._fail(ev.PROTOCOL_ERROR, "DATA on an idle stream")
            self.acknowledge_received_data(length, 0)  # closed: dropped, its share returned
            return
        if stream.remote_closed or not stream.final:
            # after its end, or before its head (a response's DATA before HEADERS)
            self.acknowledge_received_data(length, 0)
            code = ev.STREAM_CLOSED if stream.remote_closed else ev.PROTOCOL_ERROR
            self._reset(stream_id, code, events)
            return
        stream.recv_window -= length
        if stream.recv_window < 0:
            self._fail(ev.FLOW_CONTROL_ERROR, "DATA past the stream's window")
        data = payload
        if flags & _PADDED:
            data = self._unpad(payload)
        ended = bool(flags & _END_STREAM)
        if not data and not ended:
            # nothing for the stream (a flood of empty frames, CVE-2019-9518, costs
            # no event); what its padding took is returned at once
            self.acknowledge_received_data(length, stream_id)
            return
        events.append(ev.DataReceived(stream_id, data, length, ended))
        if ended:
            self._end_remote(stream_id, stream, events)

    def _on_headers(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id:
            self._fail(ev.PROTOCOL_ERROR, "HEADERS on stream 0")
        fragment = payload
        if flags & _PADDED:
            fragment = self._unpad(payload)
        if flags & _PRIORITY_FLAG:
            if len(fragment) < 5:
                self._fail(ev.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            fragment = fragment[5:]
        if flags & _END_HEADERS:
            self._headers_received(stream_id, fragment, bool(flags & _END_STREAM), events)
        else:
            self._block_stream = stream_id
            self._block = [fragment]
            self._block_size = len(fragment)
            self._block_ended = bool(flags & _END_STREAM)
            self._continuations = 0

    def _on_continuation(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if not self._block_stream or stream_id != self._block_stream:
            self._fail(ev.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        self._continuations += 1
        self._block_size += len(payload)
        if self._continuations > _MOST_CONTINUATIONS or self._block_size > _MOST_BLOCK:
            self._fail(ev.ENHANCE_YOUR_CALM, "a header block in too many pieces")
        self._block.append(payload)
        if flags & _END_HEADERS:
            block = b"".join(self._block)
            self._block_stream = 0
            self._block = []
            self._headers_received(stream_id, block, self._block_ended, events)

    def _headers_received(
        self, stream_id: int, block: bytes, ended: bool, events: list[Event]
    ) -> None:
        try:
            fields = self.decoder.decode(block)  # always: the table must stay in step
        except HpackError as exc:
            self._fail(ev.COMPRESSION_ERROR, str(exc))
        stream = self.streams.get(stream_id)
        if stream is None:
            if self.client_side or not stream_id & 1:
                if self._idle(stream_id):
                    self._fail(ev.PROTOCOL_ERROR, "HEADERS on a stream this side did not open")
                return  # a response to a stream this side reset: dropped
            if stream_id <= self.highest_inbound_stream_id:
                self._out.append(_frame(_RST_STREAM, 0, stream_id, _u32(ev.STREAM_CLOSED)))
                return
            self.highest_inbound_stream_id = stream_id
            if len(self.streams) >= self._max_streams:
                self._out.append(_frame(_RST_STREAM, 0, stream_id, _u32(ev.REFUSED_STREAM)))
                return
            stream = _Stream(self._remote_window, self._inbound_initial)
            stream.final = True
            self.streams[stream_id] = stream
            events.append(ev.RequestReceived(stream_id, fields, ended))
        elif stream.remote_closed:
            self._reset(stream_id, ev.STREAM_CLOSED, events)
            return
        elif stream.final:
            if not ended:
                self._reset(stream_id, ev.PROTOCOL_ERROR, events)  # trailers must end it
                return
            events.append(ev.TrailersReceived(stream_id, fields))
        elif self.client_side and _informational(fields):
            if ended:
                self._reset(stream_id, ev.PROTOCOL_ERROR, events)
                return
            events.append(ev.InformationalResponseReceived(stream_id, fields))
            return
        else:
            stream.final = True
            events.append(ev.ResponseReceived(stream_id, fields, ended))
        if ended:
            self._end_remote(stream_id, stream, events)

    def _on_window_update(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 4:
            self._fail(ev.FRAME_SIZE_ERROR, "WINDOW_UPDATE not of 4 bytes")
        increment = _read_u32(payload, 0) & _MAX_WINDOW
        if not stream_id:
            if not increment:
                self._fail(ev.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.outbound_flow_control_window += increment
            if self.outbound_flow_control_window > _MAX_WINDOW:
                self._fail(ev.FLOW_CONTROL_ERROR, "the connection's window past 2^31-1")
            events.append(ev.WindowUpdated(0, increment))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._idle(stream_id):
                self._fail(ev.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return
        if not increment:
            self._reset(stream_id, ev.PROTOCOL_ERROR, events)
            return
        stream.send_window += increment
        if stream.send_window > _MAX_WINDOW:
            self._reset(stream_id, ev.FLOW_CONTROL_ERROR, events)
            return
        events.append(ev.WindowUpdated(stream_id, increment))

    def _on_rst_stream(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if not stream_id:
            self._fail(ev.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            self._fail(ev.FRAME_SIZE_ERROR, "RST_STREAM not of 4 bytes")
        if self.streams.pop(stream_id, None) is not None:
            events.append(ev.StreamReset(stream_id, _read_u32(payload, 0), True))
        elif self._idle(stream_id):
            self._fail(ev.PROTOCOL_ERROR, "RST_STREAM on an idle stream")

    def _on_settings(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id:
            self._fail(ev.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & _ACK:
            if payload:
                self._fail(ev.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            self._settings_acknowledged()
            events.append(ev.SettingsAcknowledged())
            return
        if len(payload) % 6:
            self._fail(ev.FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes")
        changed: dict[int, int] = {}
        for at in range(0, len(payload), 6):
            code = int(read_i16_be(payload, at)) & 0xFFFF
            value = _read_u32(payload, at + 2)
            if code == ev.INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    self._fail(ev.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1")
                delta = value - self._remote_window
                self._remote_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > _MAX_WINDOW:
                        self._fail(ev.FLOW_CONTROL_ERROR, "a stream's window past 2^31-1")
            elif code == ev.MAX_FRAME_SIZE:
                if not _DEFAULT_FRAME <= value <= _MAX_FRAME:
                    self._fail(ev.PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
                self.max_outbound_frame_size = value
            elif code == ev.MAX_CONCURRENT_STREAMS:
                self.remote_max_concurrent_streams = value
            elif code == ev.HEADER_TABLE_SIZE:
                self.encoder.set_table_size(value)
            elif code == ev.ENABLE_PUSH:
                if value > 1 or (self.client_side and value):
                    self._fail(ev.PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH out of range")
            elif code == ev.ENABLE_CONNECT_PROTOCOL and value > 1:
                self._fail(ev.PROTOCOL_ERROR, "SETTINGS_ENABLE_CONNECT_PROTOCOL out of range")
            changed[code] = value
        self._out.append(_frame(_SETTINGS, _ACK, 0, b""))
        events.append(ev.RemoteSettingsChanged(changed))

    def _settings_acknowledged(self) -> None:
        if self._inbound_initial != self._stream_window:
            delta = self._stream_window - self._inbound_initial
            self._inbound_initial = self._stream_window
            for stream in self.streams.values():
                stream.recv_window += delta

    def _unpad(self, payload: bytes) -> bytes:
        if not payload:
            self._fail(ev.FRAME_SIZE_ERROR, "a padded frame without its pad length")
        padding = payload[0]
        if padding >= len(payload):
            self._fail(ev.PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - padding]

    # -- states --

    def _idle(self, stream_id: int) -> bool:
        """Whether ``stream_id`` was never opened (by either side)."""
        if (stream_id & 1) == (1 if self.client_side else 0):
            return stream_id > self._highest_outbound
        return stream_id > self.highest_inbound_stream_id

    def _end_remote(self, stream_id: int, stream: _Stream, events: list[Event]) -> None:
        stream.remote_closed = True
        events.append(ev.StreamEnded(stream_id))
        if stream.local_closed:
            del self.streams[stream_id]

    def _reset(self, stream_id: int, code: int, events: list[Event]) -> None:
        """A stream error: the stream reset with ``code`` and reported."""
        self.reset_stream(stream_id, code)
        events.append(ev.StreamReset(stream_id, code, False))

    def _fail(self, code: int, reason: str) -> NoReturn:
        """A connection error: GOAWAY, and ``ProtocolError``."""
        self.send_goaway(code)
        self.closed = True
        raise ProtocolError(code, reason)


def _informational(fields: list[tuple[bytes, bytes]]) -> bool:
    for name, value in fields:
        if name == b":status":
            return value[:1] == b"1"
    return False
