"""The HTTP/2 connection state (``pillion.h2.connection``), sans I/O.

Two ways of checking it, both independent of its own code: the ``h2`` library
as the peer (exchanges of requests and responses, either side, the bytes cut
anywhere), and frames written and read by ``hyperframe`` for each way a peer can
break the protocol, with the GOAWAY or RST_STREAM and the code RFC 9113 gives.
"""

from __future__ import annotations

from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.h2 import events as ev
from pillion.h2.connection import PREFACE, H2Connection, ProtocolError, StreamError

Fields = list[tuple[bytes, bytes]]
REQUEST: Fields = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"a"),
    (b":path", b"/"),
]
RESPONSE: Fields = [(b":status", b"200"), (b"content-type", b"text/plain")]


def frames(data: bytes) -> list[Frame]:
    """The frames in ``data``, read by hyperframe."""
    out = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out


def reference(client_side: bool) -> h2.connection.H2Connection:
    config = h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        normalize_outbound_headers=False,  # sent as given
        validate_outbound_headers=False,
        validate_inbound_headers=False,
    )
    return h2.connection.H2Connection(config=config)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points})
    pieces, last = [], 0
    for mark in [*marks, len(data)]:
        pieces.append(data[last:mark])
        last = mark
    return pieces


def receive_in_pieces(conn: H2Connection, data: bytes, points: list[int]) -> list[ev.Event]:
    events: list[ev.Event] = []
    for piece in cut(data, points):
        events.extend(conn.receive_data(piece))
    return events


# -- against h2 --

tokens = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
field_lists = st.lists(
    st.tuples(tokens, st.binary(max_size=30).map(lambda v: v.strip(b" \t\r\n\0") or b"v")),
    max_size=5,
)
bodies = st.lists(st.binary(max_size=3000), max_size=4)
messages = st.lists(st.tuples(field_lists, bodies, st.booleans()), min_size=1, max_size=5)
cuts = st.lists(st.integers(min_value=0), max_size=6)


@settings(max_examples=60, deadline=None)
@given(messages, cuts)
def test_a_server_reads_what_h2s_client_sends(
    requests: list[tuple[Fields, list[bytes], bool]], points: list[int]
) -> None:
    client = reference(client_side=True)
    client.initiate_connection()
    server = H2Connection(client_side=False, stream_window=1 << 16, connection_window=1 << 20)
    server.initiate_connection()
    client.receive_data(server.data_to_send())
    sent: dict[int, tuple[Fields, bytes, Fields | None]] = {}
    for fields, body, trailers in requests:
        stream_id = client.get_next_available_stream_id()
        headers = REQUEST + fields
        client.send_headers(stream_id, headers, end_stream=not body and not trailers)
        for piece in body:
            client.send_data(stream_id, piece)
        extra = [(b"x-trailer", b"t")] if trailers else None
        if extra:
            client.send_headers(stream_id, extra, end_stream=True)
        elif body:
            client.end_stream(stream_id)
        sent[stream_id] = (headers, b"".join(body), extra)
    events = receive_in_pieces(server, client.data_to_send(), points)
    got: dict[int, list[object]] = {}
    for event in events:
        if isinstance(event, ev.RequestReceived):
            got[event.stream_id] = [event.headers, b"", None, False]
        elif isinstance(event, ev.DataReceived):
            got[event.stream_id][1] += event.data  # type: ignore[operator]
            server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, ev.TrailersReceived):
            got[event.stream_id][2] = event.headers
        elif isinstance(event, ev.StreamEnded):
            got[event.stream_id][3] = True
    assert {k: tuple(v[:3]) for k, v in got.items()} == sent
    assert all(v[3] for v in got.values())
    # and the answers reach h2's client whole
    for stream_id in sent:
        server.send_headers(stream_id, RESPONSE)
        server.send_data(stream_id, b"ok", end_stream=True)
    answered = client.receive_data(server.data_to_send())
    ended = {e.stream_id for e in answered if isinstance(e, h2.events.StreamEnded)}
    assert ended == set(sent)
    assert not server.streams  # every stream over on both sides


@settings(max_examples=60, deadline=None)
@given(messages, cuts)
def test_a_client_reads_what_h2s_server_sends(
    responses: list[tuple[Fields, list[bytes], bool]], points: list[int]
) -> None:
    client = H2Connection(client_side=True, max_concurrent_streams=0, stream_window=1 << 20)
    client.initiate_connection()
    server = reference(client_side=False)
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    ids = []
    for _ in responses:
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, REQUEST, end_stream=True)
        ids.append(stream_id)
    server.receive_data(client.data_to_send())
    sent = {}
    for stream_id, (fields, body, trailers) in zip(ids, responses, strict=True):
        server.send_headers(stream_id, [(b":status", b"100")])
        server.send_headers(stream_id, RESPONSE + fields, end_stream=not body and not trailers)
        for piece in body:
            server.send_data(stream_id, piece)
        extra = [(b"grpc-status", b"0")] if trailers else None
        if extra:
            server.send_headers(stream_id, extra, end_stream=True)
        elif body:
            server.end_stream(stream_id)
        sent[stream_id] = (RESPONSE + fields, b"".join(body), extra)
    events = receive_in_pieces(client, server.data_to_send(), points)
    got: dict[int, list[object]] = {}
    informational = 0
    for event in events:
        if isinstance(event, ev.InformationalResponseReceived):
            informational += 1
        elif isinstance(event, ev.ResponseReceived):
            got[event.stream_id] = [event.headers, b"", None]
        elif isinstance(event, ev.DataReceived):
            got[event.stream_id][1] += event.data  # type: ignore[operator]
        elif isinstance(event, ev.TrailersReceived):
            got[event.stream_id][2] = event.headers
    assert {k: tuple(v) for k, v in got.items()} == sent
    assert informational == len(ids)
    assert not client.streams


def test_windows_reopen_in_batches_and_bodies_wait_for_them() -> None:
    server = H2Connection(client_side=False, stream_window=65535)
    server.initiate_connection()
    client = reference(client_side=True)
    client.initiate_connection()
    client.receive_data(server.data_to_send())
    client.send_headers(1, REQUEST)
    for _ in range(4):
        client.send_data(1, b"x" * 16000)
    events = server.receive_data(client.data_to_send())
    updates = []
    for event in events:
        if isinstance(event, ev.DataReceived):
            server.acknowledge_received_data(event.flow_controlled_length, 1)
            updates += [
                f for f in frames(server.data_to_send()) if isinstance(f, WindowUpdateFrame)
            ]
    # an update each for the connection and the stream once half of their window
    # was consumed (the third frame), not one per frame
    assert [(u.stream_id, u.window_increment) for u in updates] == [(0, 48000), (1, 48000)]
    # sending: never past the peer's windows
    server.send_headers(1, RESPONSE)
    assert server.local_flow_control_window(1) == 65535
    server.send_data(1, b"y" * 16384)
    assert server.local_flow_control_window(1) == 65535 - 16384
    with pytest.raises(StreamError):
        server.send_data(1, b"y" * 16385)  # past the peer's frame size
    with pytest.raises(StreamError):
        server.send_data(7, b"y")  # not a stream


# -- what breaks the connection, or a stream --


def opened_server(**options: int) -> H2Connection:
    server = H2Connection(client_side=False, **options)
    server.initiate_connection()
    server.receive_data(PREFACE + SettingsFrame(0).serialize())
    server.data_to_send()
    return server


def block(fields: Fields) -> bytes:
    return hpack.Encoder().encode(fields)


def headers(
    stream_id: int, fields: Fields = REQUEST, flags: tuple[str, ...] = ("END_HEADERS",)
) -> Frame:
    return HeadersFrame(stream_id, block(fields), flags=flags)


def goaway_code(server: H2Connection, *sent: Frame | bytes) -> int:
    data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in sent)
    with pytest.raises(ProtocolError) as raised:
        server.receive_data(data)
    out = frames(server.data_to_send())
    assert isinstance(out[-1], GoAwayFrame)
    assert out[-1].error_code == raised.value.code
    assert server.receive_data(b"\0" * 9) == []  # nothing read after
    return raised.value.code


def settings_frame(**values: int) -> SettingsFrame:
    return SettingsFrame(0, settings={int(k[1:], 16): v for k, v in values.items()})


def data(stream_id: int, payload: bytes, *flags: str) -> DataFrame:
    return DataFrame(stream_id, payload, flags=flags)


def raw(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """A frame as bytes, whatever it says (hyperframe refuses to write some)."""
    head = len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big")
    return head + payload


CONNECTION_ERRORS: list[tuple[str, Callable[[], list[Frame | bytes]], int]] = [
    ("a frame past 16,384 bytes", lambda: [raw(0, 0, 1, bytes(16385))], ev.FRAME_SIZE_ERROR),
    ("DATA on stream 0", lambda: [raw(0x0, 0, 0, b"x")], ev.PROTOCOL_ERROR),
    ("DATA on an idle stream", lambda: [data(9, b"x")], ev.PROTOCOL_ERROR),
    ("HEADERS on stream 0", lambda: [raw(0x1, 0x4, 0, b"\x82")], ev.PROTOCOL_ERROR),
    ("HEADERS on an even stream", lambda: [headers(2)], ev.PROTOCOL_ERROR),
    ("a header block interrupted", lambda: [headers(1, flags=()), PingFrame(0)], ev.PROTOCOL_ERROR),
    ("CONTINUATION on its own", lambda: [ContinuationFrame(1, b"")], ev.PROTOCOL_ERROR),
    ("a bad HPACK block", lambda: [raw(0x1, 0x4, 1, b"\x80")], ev.COMPRESSION_ERROR),
    (
        "65 CONTINUATION frames",
        lambda: [headers(1, flags=()), *[ContinuationFrame(1, b"") for _ in range(65)]],
        ev.ENHANCE_YOUR_CALM,
    ),
    ("PING of 7 bytes", lambda: [raw(0x6, 0, 0, bytes(7))], ev.FRAME_SIZE_ERROR),
    ("PING on a stream", lambda: [raw(0x6, 0, 1, bytes(8))], ev.PROTOCOL_ERROR),
    ("SETTINGS on a stream", lambda: [raw(0x4, 0, 1, b"")], ev.PROTOCOL_ERROR),
    ("SETTINGS of 5 bytes", lambda: [raw(0x4, 0, 0, bytes(5))], ev.FRAME_SIZE_ERROR),
    ("a SETTINGS ACK with a payload", lambda: [raw(0x4, 0x1, 0, bytes(6))], ev.FRAME_SIZE_ERROR),
    ("INITIAL_WINDOW_SIZE past 2^31-1", lambda: [settings_frame(x4=1 << 31)], ev.FLOW_CONTROL_ERROR),  # noqa: E501
    ("MAX_FRAME_SIZE below 16,384", lambda: [settings_frame(x5=100)], ev.PROTOCOL_ERROR),
    ("ENABLE_PUSH of 2", lambda: [settings_frame(x2=2)], ev.PROTOCOL_ERROR),
    ("WINDOW_UPDATE of 0 on the connection", lambda: [WindowUpdateFrame(0, 0)], ev.PROTOCOL_ERROR),
    (
        "the connection's window past 2^31-1",
        lambda: [WindowUpdateFrame(0, (1 << 31) - 1)],
        ev.FLOW_CONTROL_ERROR,
    ),
    ("WINDOW_UPDATE of 3 bytes", lambda: [raw(0x8, 0, 0, b"\0\0\1")], ev.FRAME_SIZE_ERROR),
    ("WINDOW_UPDATE on an idle stream", lambda: [WindowUpdateFrame(5, 1)], ev.PROTOCOL_ERROR),
    ("RST_STREAM on stream 0", lambda: [raw(0x3, 0, 0, bytes(4))], ev.PROTOCOL_ERROR),
    ("RST_STREAM on an idle stream", lambda: [RstStreamFrame(5)], ev.PROTOCOL_ERROR),
    ("RST_STREAM of 3 bytes", lambda: [headers(1), raw(0x3, 0, 1, bytes(3))], ev.FRAME_SIZE_ERROR),
    ("PUSH_PROMISE", lambda: [PushPromiseFrame(1, promised_stream_id=2)], ev.PROTOCOL_ERROR),
    ("GOAWAY on a stream", lambda: [raw(0x7, 0, 1, bytes(8))], ev.PROTOCOL_ERROR),
    ("PRIORITY on stream 0", lambda: [raw(0x2, 0, 0, bytes(5))], ev.PROTOCOL_ERROR),
    (
        "padding as long as the frame",
        lambda: [headers(1), raw(0x0, 0x8, 1, b"\x02x")],
        ev.PROTOCOL_ERROR,
    ),
    (
        "DATA past the stream's window",
        lambda: [headers(1), *[data(1, b"x" * 16384) for _ in range(4)], data(1, b"x" * 10)],
        ev.FLOW_CONTROL_ERROR,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sent", "code"),
    [pytest.param(make, code, id=why) for why, make, code in CONNECTION_ERRORS],
)
def test_what_breaks_the_connection_gets_goaway_with_its_code(
    sent: Callable[[], list[Frame | bytes]], code: int
) -> None:
    assert goaway_code(opened_server(), *sent()) == code


def test_a_bad_preface_or_first_frame_is_a_protocol_error() -> None:
    server = H2Connection(client_side=False)
    server.initiate_connection()
    assert goaway_code(server, b"GET / HTTP/1.1\r\n\r\n" + b"x" * 10) == ev.PROTOCOL_ERROR
    server = H2Connection(client_side=False)
    assert server.receive_data(PREFACE[:10]) == []  # the rest may come later
    assert goaway_code(server, PREFACE[10:], PingFrame(0)) == ev.PROTOCOL_ERROR


def resets(
    server: H2Connection, *sent: Frame | bytes
) -> tuple[list[tuple[int, int]], list[ev.Event]]:
    events = server.receive_data(
        b"".join(f if isinstance(f, bytes) else f.serialize() for f in sent)
    )
    out = frames(server.data_to_send())
    assert not any(isinstance(f, GoAwayFrame) for f in out)
    return [(f.stream_id, f.error_code) for f in out if isinstance(f, RstStreamFrame)], events


def test_what_breaks_one_stream_resets_only_that_stream() -> None:
    ended = headers(1, flags=("END_HEADERS", "END_STREAM"))
    cases: list[tuple[list[Frame | bytes], list[tuple[int, int]]]] = [
        ([ended, data(1, b"late")], [(1, ev.STREAM_CLOSED)]),
        # trailers without END_STREAM
        ([headers(1), headers(1, [(b"x-t", b"1")])], [(1, ev.PROTOCOL_ERROR)]),
        ([headers(1), WindowUpdateFrame(1, 0)], [(1, ev.PROTOCOL_ERROR)]),
        ([headers(1), WindowUpdateFrame(1, (1 << 31) - 65535)], [(1, ev.FLOW_CONTROL_ERROR)]),
        ([headers(1), raw(0x2, 0, 1, bytes(4))], [(1, ev.FRAME_SIZE_ERROR)]),
        ([headers(3), headers(1)], [(1, ev.STREAM_CLOSED)]),  # a new stream below the last
    ]  # fmt: skip
    for sent, expected in cases:
        server = opened_server()
        got, events = resets(server, *sent)
        assert got == expected, sent
        reported = [(e.stream_id, e.error_code) for e in events if isinstance(e, ev.StreamReset)]
        assert reported in ([], expected)


def test_streams_past_the_limit_are_refused_and_the_rest_go_on() -> None:
    server = opened_server(max_concurrent_streams=2)
    got, events = resets(server, headers(1), headers(3), headers(5), data(1, b"x"))
    assert got == [(5, ev.REFUSED_STREAM)]
    assert [e.stream_id for e in events if isinstance(e, ev.RequestReceived)] == [1, 3]
    assert any(isinstance(e, ev.DataReceived) for e in events)


def test_frames_for_a_stream_this_side_reset_are_dropped_and_their_window_returned() -> None:
    server = opened_server(connection_window=65535)
    server.receive_data(headers(1).serialize())
    server.reset_stream(1, ev.CANCEL)
    server.data_to_send()
    events = server.receive_data(b"".join(data(1, b"x" * 16384).serialize() for _ in range(3)))
    assert events == []
    updates = [f for f in frames(server.data_to_send()) if isinstance(f, WindowUpdateFrame)]
    assert [(u.stream_id, u.window_increment) for u in updates] == [(0, 16384 * 2)]


def test_padding_priority_and_unknown_frames_are_read_past() -> None:
    server = opened_server()
    padded = HeadersFrame(
        1, block(REQUEST), pad_length=10, depends_on=0, stream_weight=5,
        flags=("END_HEADERS", "PADDED", "PRIORITY"),
    )  # fmt: skip
    body = DataFrame(1, b"hello", pad_length=20, flags=("PADDED", "END_STREAM"))
    unknown = b"\x00\x00\x08\xee\x00\x00\x00\x00\x01whatever"  # a frame type of 0xee
    events = server.receive_data(
        padded.serialize() + unknown + PriorityFrame(3).serialize() + body.serialize()
    )
    request = events[0]
    assert isinstance(request, ev.RequestReceived)
    assert request.headers == REQUEST
    received = events[1]
    assert isinstance(received, ev.DataReceived)
    assert (received.data, received.flow_controlled_length, received.stream_ended) == (
        b"hello",
        26,
        True,
    )
    assert isinstance(events[2], ev.StreamEnded)


def test_empty_data_frames_are_no_events_and_their_padding_is_returned() -> None:
    server = opened_server(connection_window=65535, stream_window=65535)
    server.receive_data(headers(1).serialize())
    padded = DataFrame(1, b"", pad_length=200, flags=("PADDED",))
    events = server.receive_data(b"".join(padded.serialize() for _ in range(200)))
    events += server.receive_data(DataFrame(1, b"").serialize() * 1000)
    assert events == []
    out = frames(server.data_to_send())
    # 200 frames of 201 bytes: both windows reopened as they went, never overrun
    returned = {f.stream_id: 0 for f in out}
    for frame in out:
        assert isinstance(frame, WindowUpdateFrame)
        returned[frame.stream_id] += frame.window_increment
    assert 0 < returned[0] <= 200 * 201
    assert returned[0] == returned[1]
    ended = server.receive_data(DataFrame(1, b"", flags=("END_STREAM",)).serialize())
    assert [type(e) for e in ended] == [ev.DataReceived, ev.StreamEnded]


def test_settings_and_pings_are_answered_and_reported() -> None:
    server = opened_server()
    events = server.receive_data(
        settings_frame(x4=100, x5=32768, x3=7, x1=0).serialize()
        + PingFrame(0, b"12345678").serialize()
    )
    assert isinstance(events[0], ev.RemoteSettingsChanged)
    assert events[0].changed_settings == {4: 100, 5: 32768, 3: 7, 1: 0}
    assert isinstance(events[1], ev.PingReceived)
    out = frames(server.data_to_send())
    assert isinstance(out[0], SettingsFrame)
    assert set(out[0].flags) == {"ACK"}
    assert isinstance(out[1], PingFrame)
    assert set(out[1].flags) == {"ACK"}
    assert out[1].opaque_data == b"12345678"
    assert server.max_outbound_frame_size == 32768
    assert server.remote_max_concurrent_streams == 7


def test_a_client_refuses_push_and_data_before_a_response() -> None:
    client = H2Connection(client_side=True, max_concurrent_streams=0)
    client.initiate_connection()
    client.receive_data(SettingsFrame(0).serialize())
    client.send_headers(client.get_next_available_stream_id(), REQUEST)
    client.data_to_send()
    got, _ = resets(client, data(1, b"early"))
    assert got == [(1, ev.PROTOCOL_ERROR)]
    assert goaway_code(client, headers(2, RESPONSE)) == ev.PROTOCOL_ERROR


def test_a_goaway_is_reported_with_its_last_stream() -> None:
    server = opened_server()
    events = server.receive_data(
        GoAwayFrame(0, last_stream_id=7, error_code=ev.NO_ERROR).serialize()
    )
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ev.ConnectionTerminated)
    assert (event.last_stream_id, event.error_code) == (7, 0)
    server.send_goaway(ev.NO_ERROR)
    sent = frames(server.data_to_send())[-1]
    assert isinstance(sent, GoAwayFrame)
    assert sent.last_stream_id == 0
