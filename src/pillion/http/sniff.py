"""Whether a connection's first bytes are an HTTP/1 request. No I/O.

Used on captured outbound connections, whose protocol nobody declared: a
request line starts with a method token and a space; anything else (a TLS
ClientHello, a database's startup message, HTTP/2's preface) is passed through
as bytes. Only methods Pillion's parser accepts count, so a connection judged
HTTP is one the HTTP proxy can serve.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["LONGEST_PREFIX", "Sniffed", "sniff"]

_METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE")
_STARTS = tuple(method + b" " for method in _METHODS)

LONGEST_PREFIX = max(len(start) for start in _STARTS)  # bytes that always decide


class Sniffed(Enum):
    HTTP = "http"
    OTHER = "other"
    UNDECIDED = "undecided"  # a prefix of an HTTP start: wait for more bytes


def sniff(data: bytes) -> Sniffed:
    """What the first bytes received on a connection say it speaks."""
    if data.startswith(_STARTS):
        return Sniffed.HTTP
    if any(start.startswith(data) for start in _STARTS):
        return Sniffed.UNDECIDED  # includes b"": nothing received yet
    return Sniffed.OTHER
