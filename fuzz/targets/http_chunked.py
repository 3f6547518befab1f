"""Chunked bodies (RFC 9112 section 7.1), as llhttp decodes them under Pillion's
request and response parsers: chunk sizes, extensions, data, the last chunk and
the trailer section, then the next request on the connection.

The input is the body only; it follows a request head and a response head that
announce ``Transfer-Encoding: chunked``. Property: what the parsers decode is
exactly what ``httpref.dechunk`` decodes, and the next message starts where it
says; the parsers may refuse more than the RFC does (a chunk line longer than a
limit, say) with their documented error, never accept more. The request and
response targets' checks do the judging.
"""

from __future__ import annotations

from fuzz.target import Target
from fuzz.targets import http_request, http_response

__all__ = ["REQUEST_HEAD", "RESPONSE_HEAD", "TARGET", "check"]

REQUEST_HEAD = b"POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"
RESPONSE_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def check(data: bytes) -> None:
    http_request.check(REQUEST_HEAD + data)
    http_response.check(RESPONSE_HEAD + data)


TARGET = Target(
    name="http-chunked",
    summary="chunked bodies, trailers, then the next request (pillion.http.request, response)",
    check=check,
    tokens=(
        b"\r\n",
        b"\n",
        b"\r",
        b";",
        b";a=b",
        b';q="x\\"y"',
        b" ",
        b"\t",
        b"0",
        b"000",
        b"0\r\n\r\n",
        b"f" * 17,
        b"X-Trailer: t\r\n",
        b"Content-Length: 1\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x00",
    ),
    max_len=16 * 1024,
)
