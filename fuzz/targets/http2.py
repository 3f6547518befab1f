"""HTTP/2 frames from a client (``pillion.h2.connection``, with ``pillion.h2.hpack`` and
``pillion.h2.huffman``): what follows the preface on a connection to a listener.

Property: the connection raises nothing but ``ProtocolError``, and only after
queueing a GOAWAY with that error's code; what it writes is well-formed frames
(read back by ``hyperframe``, an independent implementation); it never holds
more streams than it allows; the fields of every header block it decoded are
what ``hpack`` decodes from one of the input's blocks. Fed whole, in thirds and
byte by byte, what it writes is the same, and so are the events (up to an error:
the events of the read that failed are not returned, so a whole read returns
fewer); the compiled and the source modules agree exactly.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import hpack
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import Frame, GoAwayFrame

import pillion.h2.connection as installed
from fuzz.target import Target
from pillion.h2 import events as h2events

__all__ = ["TARGET", "check", "run"]

BYTEWISE_UP_TO = 1024
MAX_STREAMS = 4
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS: the client's first frame


@cache
def implementations() -> list[ModuleType]:
    """The installed module, and its source loaded again when that is compiled."""
    modules = [installed]
    path = Path(installed.__file__ or "")
    if path.suffix != ".py":
        spec = importlib.util.spec_from_file_location(
            "_fuzz_h2_connection", path.with_name("connection.py")
        )
        assert spec is not None
        assert spec.loader is not None
        source = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = source
        spec.loader.exec_module(source)
        modules.append(source)
    return modules


FIELDS = {
    "RequestReceived": ("headers", "stream_id", "stream_ended"),
    "TrailersReceived": ("headers", "stream_id"),
    "DataReceived": ("data", "stream_id", "flow_controlled_length", "stream_ended"),
    "StreamEnded": ("stream_id",),
    "StreamReset": ("stream_id", "error_code", "remote"),
    "WindowUpdated": ("stream_id", "delta"),
    "RemoteSettingsChanged": ("changed_settings",),
    "ConnectionTerminated": ("error_code", "last_stream_id"),
    "SettingsAcknowledged": (),
    "PingReceived": (),
}


def _event(event: h2events.Event) -> tuple[Any, ...]:
    name = type(event).__name__
    return (name, *[getattr(event, field) for field in FIELDS[name]])


def run(module: ModuleType, data: bytes, cuts: list[int]) -> tuple[list[Any], bytes, int]:
    """The events, what the connection wrote, and the error code (-1: none)."""
    conn = module.H2Connection(
        client_side=False,
        max_concurrent_streams=MAX_STREAMS,
        stream_window=65535,
        max_header_list_size=4096,
        header_list_limit=8192,
    )
    conn.initiate_connection()
    written = [conn.data_to_send()]
    events: list[Any] = []
    code = -1
    whole = installed.PREFACE + SETTINGS + data
    marks = [0, *sorted({c % (len(whole) + 1) for c in cuts}), len(whole)]
    try:
        for start, end in itertools.pairwise(marks):
            # (nothing is acknowledged: the windows then do not depend on the cuts)
            events.extend(_event(event) for event in conn.receive_data(whole[start:end]))
            written.append(conn.data_to_send())
            assert len(conn.streams) <= MAX_STREAMS
    except module.ProtocolError as exc:
        code = exc.code
        written.append(conn.data_to_send())
    return events, b"".join(written), code


def _frames(data: bytes) -> list[Frame]:
    frames = []
    while data:
        assert len(data) >= 9, "a frame header cut short"
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        assert len(data) >= 9 + length, "a frame cut short"
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def _header_blocks(data: bytes) -> list[bytes]:
    """The complete header blocks of the client's frames, in order (read here
    independently of ``pillion.h2.connection``: HEADERS and CONTINUATION payloads)."""
    blocks: list[bytes] = []
    pending: list[bytes] | None = None
    at = 0
    while len(data) - at >= 9:
        length = int.from_bytes(data[at : at + 3], "big")
        kind, flags = data[at + 3], data[at + 4]
        payload = data[at + 9 : at + 9 + length]
        if len(payload) < length:
            break
        at += 9 + length
        if kind == 0x1:
            if flags & 0x8:
                if not payload or payload[0] >= len(payload):
                    break
                payload = payload[1 : len(payload) - payload[0]]
            if flags & 0x20:
                payload = payload[5:]
            pending = [payload]
        elif kind == 0x9 and pending is not None:
            pending.append(payload)
        else:
            continue
        if flags & 0x4:
            blocks.append(b"".join(pending))
            pending = None
    return blocks


def check(data: bytes) -> None:
    first, *others = implementations()
    events, written, code = run(first, data, [])
    for module in others:
        assert run(module, data, []) == (events, written, code), "compiled != source"
    feedings = [[len(data) // 3, 2 * len(data) // 3]]
    if len(data) <= BYTEWISE_UP_TO:
        feedings.append(list(range(len(data) + 50)))
    for cuts in feedings:
        again, again_written, again_code = run(first, data, cuts)
        assert (again_written, again_code) == (written, code), f"cut at {cuts[:3]}"
        if code < 0:
            assert again == events, f"cut at {cuts[:3]}"
        else:  # the events of the read that failed are not returned: fewer, whole
            assert again[: len(events)] == events, f"cut at {cuts[:3]}"
    try:
        frames = _frames(written)
    except HyperframeError as exc:
        raise AssertionError(f"wrote a frame hyperframe cannot read: {exc}") from exc
    if code >= 0:
        assert isinstance(frames[-1], GoAwayFrame), "an error without its GOAWAY"
        assert frames[-1].error_code == code
    else:
        assert not any(isinstance(f, GoAwayFrame) for f in frames), "GOAWAY without an error"
    # every block the connection decoded (it decodes each in order until it fails),
    # the reference decodes to the same fields
    decoded = [e[1] for e in events if e[0] in ("RequestReceived", "TrailersReceived")]
    if decoded:
        reference = hpack.Decoder()
        reference.max_header_list_size = 1 << 20
        results = []
        for block in _header_blocks(data):
            try:
                results.append([tuple(f) for f in reference.decode(block, raw=True)])
            except hpack.HPACKError:
                break
        for fields in decoded:
            assert fields in results, "fields hpack does not read from any block"


TARGET = Target(
    name="http2",
    summary="HTTP/2 frames from a client, after the preface (pillion.h2.connection)",
    check=check,
    tokens=(
        b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",  # SETTINGS
        b"\x00\x00\x00\x04\x01\x00\x00\x00\x00",  # SETTINGS ACK
        b"\x00\x00\x08\x06\x00\x00\x00\x00\x00",  # PING header
        b"\x00\x00\x04\x08\x00\x00\x00\x00\x01",  # WINDOW_UPDATE header, stream 1
        b"\x00\x00\x04\x03\x00\x00\x00\x00\x01",  # RST_STREAM header, stream 1
        b"\x00\x00\x05\x01\x05\x00\x00\x00\x01",  # HEADERS, END_STREAM|END_HEADERS, 5 bytes
        b"\x00\x00\x05\x01\x01\x00\x00\x00\x03",  # HEADERS, END_STREAM, stream 3
        b"\x00\x00\x05\x09\x04\x00\x00\x00\x03",  # CONTINUATION, END_HEADERS
        b"\x00\x00\x05\x00\x01\x00\x00\x00\x01",  # DATA, END_STREAM
        b"\x00\x00\x08\x07\x00\x00\x00\x00\x00",  # GOAWAY header
        b"\x82\x86\x84\x41\x01a",  # GET http / :authority a
        b"\x3f\xe1\x1f",  # table size update 4096
        b"\xbe",  # dynamic index 62
        b"\x40\x01x\x01y",  # literal x: y, indexed
        b"\x7f\x80\x80\x80\x80\x08",  # an integer past 2^31
        b"\x87\xff\xff\xff\xff",  # Huffman with EOS
    ),
    max_len=4096,
)
