"""gRPC over HTTP/2, as a proxy sees it: which requests are gRPC, their
deadline (``grpc-timeout``), their status (``grpc-status``), and Pillion's own
answers as gRPC errors. No I/O.

A gRPC client cannot read an HTML or text/plain 503: it reports "unknown" or a
protocol error. So a request whose ``content-type`` is ``application/grpc``
(with or without a ``+proto`` suffix, not ``grpc-web``) is refused the gRPC way:
HTTP 200, ``content-type: application/grpc``, ``grpc-status`` and
``grpc-message`` in the headers and no body (a trailers-only response,
https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md). The codes for
Pillion's answers follow what the client should do: rate limited is
``RESOURCE_EXHAUSTED`` (8), no token ``UNAUTHENTICATED`` (16), forbidden
``PERMISSION_DENIED`` (7), no route ``UNIMPLEMENTED`` (12), no healthy upstream
or a broken one ``UNAVAILABLE`` (14), a timeout ``DEADLINE_EXCEEDED`` (4).
"""

from __future__ import annotations

import re

from pillion.http.headers import HeaderPairs

__all__ = [
    "CODE_NAMES",
    "code_for_status",
    "format_timeout",
    "is_grpc",
    "parse_timeout",
    "reply_headers",
    "status_in",
]

CODE_NAMES = {
    "ok": 0,
    "cancelled": 1,
    "unknown": 2,
    "invalid-argument": 3,
    "deadline-exceeded": 4,
    "not-found": 5,
    "already-exists": 6,
    "permission-denied": 7,
    "resource-exhausted": 8,
    "failed-precondition": 9,
    "aborted": 10,
    "out-of-range": 11,
    "unimplemented": 12,
    "internal": 13,
    "unavailable": 14,
    "data-loss": 15,
    "unauthenticated": 16,
}
"""gRPC status codes by the names a retry policy uses (Envoy's spelling)."""

_CODE_FOR_STATUS = {
    400: 13,
    401: 16,
    403: 7,
    404: 12,
    408: 4,
    413: 8,
    429: 8,
    431: 8,
    501: 12,
    502: 14,
    503: 14,
    504: 4,
}
_TIMEOUT = re.compile(rb"([0-9]{1,8})([HMSmun])")
_UNIT = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_MESSAGE_SAFE = re.compile(rb"[^\x20-\x24\x26-\x7e]")


def is_grpc(content_type: bytes) -> bool:
    """``application/grpc`` or ``application/grpc+<codec>`` (not grpc-web)."""
    value = content_type.lower()
    return value.startswith(b"application/grpc") and (
        len(value) == 16 or value[16:17] in (b"+", b";")
    )


def parse_timeout(value: bytes) -> float | None:
    """A ``grpc-timeout`` in seconds; None when malformed (then ignored)."""
    found = _TIMEOUT.fullmatch(value.strip())
    if found is None:
        return None
    return int(found.group(1)) * _UNIT[found.group(2)]


def format_timeout(seconds: float) -> bytes:
    """``seconds`` as a ``grpc-timeout``: milliseconds, rounded up, at least 1."""
    millis = max(1, int(seconds * 1000 + 0.999))
    if millis <= 99_999_999:
        return b"%dm" % millis
    return b"%dS" % min(99_999_999, int(seconds + 0.999))


def code_for_status(status: int) -> int:
    """The gRPC code for one of Pillion's own HTTP answers."""
    return _CODE_FOR_STATUS.get(status, 2)


def reply_headers(code: int, message: str) -> HeaderPairs:
    """The fields of a trailers-only gRPC error of Pillion's own."""
    encoded = _MESSAGE_SAFE.sub(lambda m: b"%%%02X" % m.group()[0], message.encode())
    return (
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"%d" % code),
        (b"grpc-message", encoded),
    )


def status_in(fields: HeaderPairs) -> bytes | None:
    """The ``grpc-status`` among ``fields`` (trailers, or a trailers-only head)."""
    for name, value in fields:
        if name == b"grpc-status" or (len(name) == 11 and name.lower() == b"grpc-status"):
            return value
    return None
