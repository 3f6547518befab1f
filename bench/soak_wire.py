"""The soak's wire formats: HTTP/1.1 heads, WebSocket frames (RFC 6455), syslog
octet-counted frames (RFC 6587). Pure functions over bytes, plus the two readers
that pull one HTTP message or one WebSocket frame off an ``asyncio.StreamReader``.

Only what the soak's own client and app send each other is supported: GET without
a body, unfragmented WebSocket frames, responses framed by Content-Length, chunks
or the end of the connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from dataclasses import dataclass

__all__ = [
    "OP_CLOSE",
    "OP_TEXT",
    "Response",
    "WireError",
    "parse_request_head",
    "parse_response_head",
    "read_response",
    "read_ws_frame",
    "request_head",
    "split_syslog_frames",
    "ws_accept",
    "ws_frame",
    "ws_key",
    "ws_upgrade_head",
]

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_MAX_BODY = 1 << 20
_MAX_SYSLOG_FRAME = 1 << 20


class WireError(Exception):
    """The peer sent something the soak's protocols do not allow."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


# --- HTTP/1.1 ----------------------------------------------------------------------


def request_head(path: str, host: str, *, close: bool) -> bytes:
    """A GET request head; ``close`` asks for ``Connection: close``."""
    connection = "close" if close else "keep-alive"
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n\r\n".encode()


def ws_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def ws_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` answering ``key`` (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()  # noqa: S324


def ws_upgrade_head(path: str, host: str, key: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n"
        f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    ).encode()


def _header_lines(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            raise WireError(f"bad header line {line[:60]!r}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


def parse_request_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and headers (names lower case) of a request head."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise WireError(f"bad request line {lines[0][:60]!r}")
    return parts[0].decode(), parts[1].decode(), _header_lines(lines[1:])


def parse_response_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers (names lower case) of a response head."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise WireError(f"bad status line {lines[0][:60]!r}")
    return int(parts[1]), _header_lines(lines[1:])


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers from our peers: the last CRLF
            return bytes(body)
        if len(body) + size > _MAX_BODY:
            raise WireError("chunked body too large")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> Response:
    """One response; ``head_only`` for a 101 (the bytes after it are another protocol).
    Raises ``asyncio.IncompleteReadError`` when the connection ends first."""
    status, headers = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
    if head_only or status in (101, 204, 304):
        return Response(status, headers, b"")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(status, headers, await _read_chunked(reader))
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > _MAX_BODY:
            raise WireError(f"body of {length} bytes")
        return Response(status, headers, await reader.readexactly(length))
    return Response(status, headers, await reader.read(_MAX_BODY))


# --- WebSocket ---------------------------------------------------------------------


def ws_frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    """One final frame; a client's frames are masked (RFC 6455 section 5.3)."""
    first = 0x80 | opcode
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + _unmask(payload, mask)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


async def read_ws_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The opcode and (unmasked) payload of the next frame; fragments are refused."""
    first, second = await reader.readexactly(2)
    if not first & 0x80:
        raise WireError("fragmented WebSocket frame")
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    if length > _MAX_BODY:
        raise WireError(f"WebSocket frame of {length} bytes")
    mask = await reader.readexactly(4) if second & 0x80 else b""
    payload = await reader.readexactly(length)
    return first & 0x0F, _unmask(payload, mask) if mask else payload


# --- syslog ------------------------------------------------------------------------


def split_syslog_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete ``MSG-LEN SP SYSLOG-MSG`` frames at the start of ``buffer``, and
    what is left after them (the start of the next frame)."""
    frames: list[bytes] = []
    position = 0
    while True:
        space = buffer.find(b" ", position, position + 12)
        if space < 0:
            if len(buffer) - position > 12:
                raise WireError(f"no frame length at {buffer[position : position + 20]!r}")
            break
        digits = buffer[position:space]
        if not digits.isdigit() or int(digits) > _MAX_SYSLOG_FRAME:
            raise WireError(f"bad frame length {digits[:20]!r}")
        end = space + 1 + int(digits)
        if end > len(buffer):
            break
        frames.append(buffer[space + 1 : end])
        position = end
    return frames, buffer[position:]
