"""Bytes on the wire: message heads, chunk framing, Pillion's own short responses."""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from librt.strings import BytesWriter

from pillion.http.headers import HeaderPairs, Headers

__all__ = [
    "CONTINUE",
    "LAST_CHUNK",
    "chunk",
    "head",
    "local_response",
    "reason_phrase",
    "reply",
    "status_line",
    "write_fields",
]

LAST_CHUNK: Final = b"0\r\n\r\n"
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

_STATUS_LINES: Final[dict[int, bytes]] = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
    for status in HTTPStatus
}


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def status_line(status: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n``; Pillion always speaks HTTP/1.1 (RFC 9110 §6.2)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d Unknown\r\n" % status
    return line


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def head(first_line: bytes, headers: Headers, extra: bytes = b"") -> bytes:
    """A message head from its first line, header pairs and pre-built extra lines.

    Written into a ``BytesWriter``: compiled, each ``write`` is a copy into one
    growing buffer (a list of pieces joined costs about twice as much)."""
    out = BytesWriter()
    out.write(first_line)
    write_fields(out, headers)
    out.write(extra)
    out.write(b"\r\n")
    return out.getvalue()


def write_fields(out: BytesWriter, headers: HeaderPairs) -> None:
    """``name: value`` lines, each ending in CRLF."""
    for name, value in headers:
        out.write(name)
        out.write(b": ")
        out.write(value)
        out.write(b"\r\n")


def reply(status: int, body: bytes, *, close: bool = False, headers: HeaderPairs = ()) -> bytes:
    """A whole response of Pillion's own, or a route's configured one: text/plain
    unless ``headers`` say otherwise (a gRPC error)."""
    typed = headers and any(name == b"content-type" for name, _ in headers)
    return b"".join(
        (
            status_line(status),
            b"" if typed else b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n" if close else b"",
            *(b"%s: %s\r\n" % pair for pair in headers),
            b"\r\n",
            body,
        )
    )


def local_response(status: int, message: str, *, close: bool = True) -> bytes:
    """A short plain-text response of Pillion's own (errors, rejections)."""
    return reply(status, f"{message}\n".encode(), close=close)
