"""Whether a connection's first bytes are an HTTP/1 request or HTTP/2's
connection preface. No I/O.

Used on captured outbound connections, whose protocol nobody declared: a
request line starts with a method token and a space; HTTP/2 with prior
knowledge (a gRPC client, say) starts with ``PRI * HTTP/2.0``; anything else
(a TLS ClientHello, a database's startup message) is passed through as bytes.
Only methods Pillion's parser accepts count, so a connection judged HTTP is one
the HTTP proxy can serve.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["HTTP2_PREFACE", "LONGEST_PREFIX", "Sniffed", "sniff"]

_METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE")
_STARTS = tuple(method + b" " for method in _METHODS)

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4
LONGEST_PREFIX = len(HTTP2_PREFACE)  # bytes that always decide


class Sniffed(Enum):
    HTTP = "http"
    HTTP2 = "http2"
    OTHER = "other"
    UNDECIDED = "undecided"  # a prefix of an HTTP start: wait for more bytes


def sniff(data: bytes) -> Sniffed:
    """What the first bytes received on a connection say it speaks."""
    if data.startswith(_STARTS):
        return Sniffed.HTTP
    if data.startswith(HTTP2_PREFACE):
        return Sniffed.HTTP2
    if any(start.startswith(data) for start in _STARTS) or HTTP2_PREFACE.startswith(data):
        return Sniffed.UNDECIDED  # includes b"": nothing received yet
    return Sniffed.OTHER
