"""HTTP/2 messages as field lists: a request's fields checked and turned into a
``RequestHead``, a response's into a ``ResponseHead``, and back. No I/O.

Pillion's HTTP/2 layer (``pillion.h2``) frames, decodes HPACK and keeps the stream
states; the rules about what the fields may say are kept here, so that a
malformed request is a *stream* error, as RFC 9113 §8.1.1 asks, and not the end
of the connection with every other stream on it. A request is malformed
(``MalformedStream``: reset with ``PROTOCOL_ERROR``) when its pseudo-headers
are unknown, repeated, missing or after a regular field, a field name is not a
lower-case token, a value holds CR, LF or NUL or starts or ends with
whitespace, it carries a connection-specific field (``connection``,
``keep-alive``, ``proxy-connection``, ``transfer-encoding``, ``upgrade``), a
``TE`` other than ``trailers``, or a bad ``content-length``. The listener's
limits apply as on HTTP/1.1: 431 for too many or too large fields, 414 for a
long ``:path``, 413 for an announced body over the limit; ``CONNECT`` is 501.

A request becomes a ``RequestHead`` of version ``2``: ``:authority`` (else
``Host``) is its host, ``:path`` its target, several ``cookie`` fields one
(RFC 9113 §8.2.3), and its body ``none`` (the stream ended with its headers),
``length`` (a ``content-length``) or ``chunked`` (of unknown length: an
HTTP/1.1 app gets it chunked).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from pillion.http.errors import MalformedStream, RequestError, ResponseError
from pillion.http.headers import HeaderPairs, Headers
from pillion.http.request import BodyKind, ParserLimits, RequestHead
from pillion.http.response import ResponseBody, ResponseHead

__all__ = [
    "CONNECTION_SPECIFIC",
    "request_head",
    "response_fields",
    "response_head",
    "trailer_fields",
]

CONNECTION_SPECIFIC: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
"""Fields HTTP/2 forbids (RFC 9113 §8.2.2)."""

_FIELD_OVERHEAD: Final = 32  # per field, as HPACK and SETTINGS_MAX_HEADER_LIST_SIZE count it
_NAME: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BLANKS: Final = b" \t"
_VALID_NAMES: Final[set[bytes]] = set()
_MOST_NAMES: Final = 1024
_STATUS: Final = re.compile(rb"[1-9][0-9][0-9]")


def request_head(
    fields: Iterable[tuple[bytes, bytes]], ended: bool, limits: ParserLimits
) -> RequestHead:
    """The request a stream's HEADERS carry (``ended``: with END_STREAM)."""
    method = scheme = authority = path = None
    headers: Headers = []
    cookies: list[bytes] = []
    host = b""
    content_length = -1
    size = 0
    regular = False
    for name, value in fields:
        size += len(name) + len(value) + _FIELD_OVERHEAD
        if name[:1] == b":":
            if regular:
                raise MalformedStream("pseudo-header field after a regular field")
            if name == b":method" and method is None:
                method = value
            elif name == b":path" and path is None:
                path = value
            elif name == b":scheme" and scheme is None:
                scheme = value
            elif name == b":authority" and authority is None:
                authority = value
            else:
                raise MalformedStream(f"unknown or repeated pseudo-header {_shown(name)}")
            continue
        regular = True
        if not _valid_name(name):
            raise MalformedStream(f"invalid field name {_shown(name)}")
        if _bad_value(value):
            raise MalformedStream(f"invalid value in field {_shown(name)}")
        if name in CONNECTION_SPECIFIC:
            raise MalformedStream(f"connection-specific field {_shown(name)}")
        if name == b"te":
            if value.lower() != b"trailers":
                raise MalformedStream("te other than trailers")
        elif name == b"content-length":
            content_length = _content_length(value, content_length)
        elif name == b"host":
            host = value
        elif name == b"cookie":
            cookies.append(value)
            continue
        headers.append((name, value))
    if size > limits.max_header_size or len(headers) + len(cookies) > limits.max_headers:
        raise RequestError(431, "request header fields too large")
    if method is None or path is None or scheme is None:
        if method == b"CONNECT":
            raise RequestError(501, "CONNECT is not supported")
        raise MalformedStream("missing :method, :scheme or :path")
    if method == b"CONNECT":
        raise RequestError(501, "CONNECT is not supported")
    if _NAME.fullmatch(method.lower()) is None:
        raise MalformedStream("invalid :method")
    if not path or (path[0] != 0x2F and not (path == b"*" and method == b"OPTIONS")):
        raise MalformedStream("invalid :path")
    if _bad_value(path) or b" " in path:
        raise MalformedStream("invalid :path")
    if len(path) > limits.max_uri_size:
        raise RequestError(414, "URI too long")
    host = authority or host
    if not host or _bad_value(host):
        raise RequestError(400, "missing :authority")
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    body: BodyKind
    if ended:
        if content_length > 0:
            raise MalformedStream("content-length with no body")
        body = "none"
    elif content_length >= 0:
        body = "length"
        if limits.max_body_size and content_length > limits.max_body_size:
            raise RequestError(413, "request body too large")
    else:
        body = "chunked"
    return RequestHead(
        method, path, b"2", headers, host, True, body, content_length, set(), False, False
    )


def response_head(fields: Iterable[tuple[bytes, bytes]], ended: bool) -> ResponseHead:
    """An HTTP/2 app's response; ``ResponseError`` (502) when it is malformed."""
    status = b""
    headers: Headers = []
    content_length = -1
    for name, value in fields:
        if name[:1] == b":":
            if name != b":status" or status or headers:
                raise ResponseError("malformed HTTP/2 response")
            status = value
            continue
        if name in CONNECTION_SPECIFIC:
            continue  # forbidden, and never passed on
        if name == b"content-length":
            try:
                content_length = _content_length(value, content_length)
            except MalformedStream:
                raise ResponseError("invalid content-length from upstream") from None
        headers.append((name, value))
    if _STATUS.fullmatch(status) is None:
        raise ResponseError("malformed HTTP/2 response status")
    body: ResponseBody
    if ended:
        body = "none"
    elif content_length >= 0:
        body = "length"
    else:
        body = "chunked"
    return ResponseHead(int(status), headers, True, body, content_length, set())


def response_fields(status: int, headers: HeaderPairs, length: int = -1) -> Headers:
    """A response head as HTTP/2 fields: ``:status`` first, names lower-cased,
    connection-specific fields dropped, ``content-length`` when known."""
    fields: Headers = [(b":status", b"%d" % status)]
    for name, value in headers:
        low = name.lower()
        if low not in CONNECTION_SPECIFIC and low != b"content-length":
            fields.append((low, value))
    if length >= 0:
        fields.append((b"content-length", b"%d" % length))
    return fields


def trailer_fields(trailers: HeaderPairs) -> Headers:
    """Trailers as HTTP/2 fields: no pseudo-headers, lower-case names."""
    return [
        (low, value)
        for name, value in trailers
        if (low := name.lower())[:1] != b":" and low not in CONNECTION_SPECIFIC
    ]


def _valid_name(name: bytes) -> bool:
    """A lower-case token: names seen valid before are remembered (at most
    ``_MOST_NAMES``), so a connection's repeated fields skip the pattern."""
    if name in _VALID_NAMES:
        return True
    if _NAME.fullmatch(name) is None:
        return False
    if len(_VALID_NAMES) < _MOST_NAMES:
        _VALID_NAMES.add(name)
    return True


def _bad_value(value: bytes) -> bool:
    """CR, LF or NUL in it, or whitespace at either end (RFC 9113 §8.2.1)."""
    if not value:
        return False
    if value[0] in _BLANKS or value[-1] in _BLANKS:
        return True
    return b"\r" in value or b"\n" in value or b"\x00" in value


def _content_length(value: bytes, seen: int) -> int:
    if not value.isdigit() or len(value) > 18:
        raise MalformedStream("invalid content-length")
    length = int(value)
    if seen >= 0 and seen != length:
        raise MalformedStream("conflicting content-length")
    return length


def _shown(name: bytes) -> str:
    return repr(name[:40].decode("latin-1"))
