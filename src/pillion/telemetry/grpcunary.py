"""One gRPC unary call at a time over a kept HTTP/2 connection (asyncio).

Enough gRPC for an exporter: a request message out, a response message and a
status back (gRPC over HTTP/2, PROTOCOL-HTTP2.md), over cleartext HTTP/2 with
prior knowledge or TLS with ALPN ``h2``. The connection is made on the first
call and kept; a call that fails on it closes it, and the next call makes a new
one. Framing and status parsing are pure functions; the class only moves bytes.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from dataclasses import dataclass
from urllib.parse import unquote

from pillion.h2 import events as h2events
from pillion.h2.connection import H2Connection, ProtocolError

__all__ = ["GrpcResult", "GrpcUnaryClient", "frame", "unframe"]

_READ = 65536
_CLOSE_WAIT = 1.0  # seconds a peer has to finish closing the connection


@dataclass(frozen=True)
class GrpcResult:
    """``status`` is the gRPC status code (``None``: no answer, the connection
    failed); ``http_status`` the HTTP/2 ``:status``; ``message`` the response."""

    status: int | None
    detail: str = ""
    message: bytes = b""
    http_status: int = 0


def frame(message: bytes, *, compressed: bool = False) -> bytes:
    """A length-prefixed message (a flag byte, a 4-byte big-endian length)."""
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


def unframe(data: bytes) -> bytes | None:
    """The first message of a response body (uncompressed only; ``None`` if it is
    cut short or compressed)."""
    if len(data) < 5:
        return b"" if not data else None
    flag, length = struct.unpack(">BI", data[:5])
    if flag != 0 or len(data) < 5 + length:
        return None
    return data[5 : 5 + length]


class GrpcUnaryClient:
    """Calls on ``host:port``; ``tls`` for https (its context should offer ALPN h2)."""

    def __init__(
        self, host: str, port: int, *, tls: ssl.SSLContext | None = None, timeout: float = 10.0
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._h2: H2Connection | None = None
        self._lock = asyncio.Lock()

    async def call(
        self,
        path: str,
        body: bytes,
        headers: list[tuple[str, str]] = [],  # noqa: B006
    ) -> GrpcResult:
        """``body`` (already framed) to the method at ``path``; never raises for a
        network failure (``status`` None)."""
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._call(path, body, headers)
            except (OSError, TimeoutError, ProtocolError) as exc:
                await self.close()
                return GrpcResult(None, detail=str(exc) or type(exc).__name__)

    async def close(self) -> None:
        """Say goodbye (GOAWAY) and close; a TLS peer that does not answer the
        close_notify within a second is cut off (a stop must not wait on it)."""
        writer, connection = self._writer, self._h2
        self._reader = self._writer = self._h2 = None
        if writer is None:
            return
        if connection is not None and not connection.closed:
            connection.close_connection()
            writer.write(connection.data_to_send())
        writer.close()
        try:
            async with asyncio.timeout(_CLOSE_WAIT):
                await writer.wait_closed()
        except (OSError, ssl.SSLError, TimeoutError):
            writer.transport.abort()

    async def _connect(self) -> H2Connection:
        if self._h2 is not None:
            return self._h2
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls, server_hostname=self.host if self.tls else None
        )
        connection = H2Connection(client_side=True, max_concurrent_streams=0)
        connection.initiate_connection()
        self._h2 = connection
        await self._flush()
        return connection

    async def _flush(self) -> None:
        assert self._writer is not None
        assert self._h2 is not None
        data = self._h2.data_to_send()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _call(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> GrpcResult:
        connection = await self._connect()
        stream = connection.get_next_available_stream_id()
        request = [
            (b":method", b"POST"),
            (b":scheme", b"https" if self.tls is not None else b"http"),
            (b":path", path.encode()),
            (b":authority", f"{self.host}:{self.port}".encode()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"grpc-timeout", b"%dm" % int(self.timeout * 1000)),
            *((name.lower().encode(), value.encode()) for name, value in headers),
        ]
        connection.send_headers(stream, request, end_stream=not body)
        await self._flush()
        sent = 0
        response = bytearray()
        http_status = 0
        fields: dict[bytes, bytes] = {}
        while True:
            while sent < len(body):  # as much as the peer's windows allow
                room = min(
                    connection.local_flow_control_window(stream),
                    connection.max_outbound_frame_size,
                    len(body) - sent,
                )
                if room <= 0:
                    break
                connection.send_data(stream, body[sent : sent + room], sent + room == len(body))
                sent += room
            await self._flush()
            assert self._reader is not None
            data = await self._reader.read(_READ)
            if not data:
                raise ConnectionError("the collector closed the connection")
            for event in connection.receive_data(data):
                if isinstance(event, h2events.ResponseReceived) and event.stream_id == stream:
                    for name, value in event.headers:
                        fields[name] = value
                    http_status = int(fields.get(b":status", b"0"))
                elif isinstance(event, h2events.DataReceived) and event.stream_id == stream:
                    response += event.data
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2events.TrailersReceived) and event.stream_id == stream:
                    for name, value in event.headers:
                        fields[name] = value
                elif isinstance(event, h2events.StreamEnded) and event.stream_id == stream:
                    await self._flush()
                    return _result(fields, bytes(response), http_status)
                elif isinstance(event, h2events.StreamReset) and event.stream_id == stream:
                    code = h2events.error_name(event.error_code)
                    raise ConnectionError(f"stream reset ({code})")
                elif isinstance(event, h2events.ConnectionTerminated):
                    raise ConnectionError(f"GOAWAY ({h2events.error_name(event.error_code)})")


def _result(fields: dict[bytes, bytes], body: bytes, http_status: int) -> GrpcResult:
    """The call's status from its trailers (or a trailers-only response)."""
    status = fields.get(b"grpc-status")
    if status is None or not status.isdigit():
        # no gRPC status: an HTTP answer from something that is not a gRPC server
        return GrpcResult(_from_http(http_status), f"HTTP {http_status}", http_status=http_status)
    detail = unquote(fields.get(b"grpc-message", b"").decode("latin-1"))
    message = unframe(body) if int(status) == 0 else b""
    return GrpcResult(int(status), detail, message or b"", http_status)


def _from_http(status: int) -> int:
    """The gRPC code for an HTTP status without ``grpc-status`` (gRPC's
    http-grpc-status-mapping.md)."""
    return {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}.get(status, 2)
