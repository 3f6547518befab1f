"""A raw HTTP/2 client for the tests: frames written as they are (hyperframe,
hpack), valid or not, and the server's frames read back, decoded.

No client state machine stands in the way, so a test can send what a
well-behaved client never would (uppercase names, a DATA frame past its
content-length, a flood of RST_STREAM) and see exactly what Pillion answers.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field

from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
Fields = list[tuple[bytes, bytes]]


@dataclass
class Stream:
    """What the server sent on one stream."""

    status: int | None = None
    headers: Fields = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: Fields | None = None
    ended: bool = False
    reset: int | None = None  # RST_STREAM error code

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def over(self) -> bool:
        return self.ended or self.reset is not None


class RawH2:
    """One connection to ``port``: cleartext prior knowledge, or TLS with ALPN h2."""

    def __init__(
        self,
        port: int,
        *,
        settings: dict[int, int] | None = None,
        window: bool = True,
        tls: ssl.SSLContext | None = None,
        server_name: str = "localhost",
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=server_name)
        self.sock = sock
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.streams: dict[int, Stream] = {}
        self.goaway: GoAwayFrame | None = None
        self.closed = False
        self.frames: list[Frame] = []
        self.server_settings: dict[int, int] = {}
        self._buffer = b""
        self.window = window
        first = SettingsFrame(0)
        first.settings = settings if settings is not None else {0x4: 1 << 30}
        self.sock.sendall(PREFACE + first.serialize())
        if window:  # never a reason for the server to wait on this client
            self.send(WindowUpdateFrame(0, window_increment=(1 << 30)))

    # -- sending --

    def send(self, *frames: Frame) -> None:
        self.sock.sendall(b"".join(frame.serialize() for frame in frames))

    def _answer(self, *frames: Frame) -> None:
        """ACKs and WINDOW_UPDATEs: not sent once the server is gone."""
        with contextlib.suppress(OSError):
            self.send(*frames)

    def headers(
        self,
        stream_id: int,
        fields: Fields,
        *,
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> bytes:
        """HEADERS for ``fields``, HPACK-encoded as given (nothing checked)."""
        block = self.encoder.encode(fields)
        frame = HeadersFrame(stream_id, data=block)
        if end_stream:
            frame.flags.add("END_STREAM")
        if end_headers:
            frame.flags.add("END_HEADERS")
        self.send(frame)
        return block

    def request(
        self,
        stream_id: int,
        path: str = "/",
        *,
        method: str = "GET",
        extra: Fields | None = None,
        body: bytes | None = None,
        authority: str = "test",
    ) -> None:
        fields: Fields = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *(extra or []),
        ]
        self.headers(stream_id, fields, end_stream=body is None)
        if body is not None:
            self.data(stream_id, body, end_stream=True)

    def data(self, stream_id: int, payload: bytes, *, end_stream: bool = False) -> None:
        frames = []
        for start in range(0, max(len(payload), 1), 16384):
            frame = DataFrame(stream_id, data=payload[start : start + 16384])
            frames.append(frame)
        if end_stream:
            frames[-1].flags.add("END_STREAM")
        self.send(*frames)

    def continuation(self, stream_id: int, block: bytes, *, end_headers: bool = False) -> None:
        frame = ContinuationFrame(stream_id, data=block)
        if end_headers:
            frame.flags.add("END_HEADERS")
        self.send(frame)

    def reset(self, stream_id: int, code: int = 0x8) -> None:
        self.send(RstStreamFrame(stream_id, error_code=code))

    def ping(self, payload: bytes = b"12345678") -> None:
        self.send(PingFrame(0, opaque_data=payload))

    # -- receiving --

    def read_until(self, done: object, timeout: float = 10.0) -> None:
        """Read frames until ``done()`` is true or the server closed the connection."""
        check = done if callable(done) else (lambda: False)
        deadline = time.monotonic() + timeout
        while not check() and not self.closed:
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not get there")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
                break
            self._buffer += data
            self._parse()

    def response(self, stream_id: int, timeout: float = 10.0) -> Stream:
        self.read_until(lambda: self.stream(stream_id).over or self.goaway is not None, timeout)
        return self.stream(stream_id)

    def stream(self, stream_id: int) -> Stream:
        return self.streams.setdefault(stream_id, Stream())

    def wait_closed(self, timeout: float = 10.0) -> None:
        self.read_until(lambda: self.closed, timeout)

    def _parse(self) -> None:
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                return
            frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
            self._buffer = self._buffer[9 + length :]
            self.frames.append(frame)
            self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        if isinstance(frame, SettingsFrame):
            if "ACK" not in frame.flags:
                self.server_settings.update(frame.settings)
                self._answer(SettingsFrame(0, flags=["ACK"]))
        elif isinstance(frame, HeadersFrame):
            stream = self.stream(frame.stream_id)
            fields = [(bytes(k), bytes(v)) for k, v in self.decoder.decode(frame.data, raw=True)]
            if stream.status is None:
                status = dict(fields).get(b":status", b"0")
                stream.status = int(status)
                if stream.status >= 200:
                    stream.headers = [(k, v) for k, v in fields if not k.startswith(b":")]
                else:
                    stream.status = None  # an interim response
            else:
                stream.trailers = fields
            if "END_STREAM" in frame.flags:
                stream.ended = True
        elif isinstance(frame, DataFrame):
            stream = self.stream(frame.stream_id)
            stream.body += frame.data
            if frame.flow_controlled_length:
                self._answer(
                    WindowUpdateFrame(
                        frame.stream_id, window_increment=frame.flow_controlled_length
                    )
                )
            if "END_STREAM" in frame.flags:
                stream.ended = True
        elif isinstance(frame, RstStreamFrame):
            self.stream(frame.stream_id).reset = frame.error_code
        elif isinstance(frame, GoAwayFrame):
            self.goaway = frame

    def close(self) -> None:
        self.sock.close()
