"""What the app receives and what the client receives: header rewriting, without I/O.

To the app: hop-by-hop fields removed (RFC 9110 §7.6.1, with those named in
``Connection``), ``Host`` from the request (or its absolute-form target),
``X-Forwarded-For`` appended, ``X-Forwarded-Proto`` and ``X-Forwarded-Host``
set, ``x-request-id`` kept when valid or generated, ``traceparent`` kept when
valid or started, and Pillion's own body framing. ``Expect`` is answered by
Pillion itself and not forwarded. ``TE: trailers`` is kept (gRPC needs it; RFC
9110 §10.1.4), any other ``TE`` dropped. ``Upgrade`` travels only as the gate
admitted it (``upgrade``); ``HTTP2-Settings`` never does (RFC 9113 §3.1 retired
the h2c upgrade, and it smuggles HTTP/2 past every check).
To the client: hop-by-hop fields removed and Pillion's own framing.
"""

from __future__ import annotations

from pillion.http.headers import HOP_BY_HOP, Headers, connection_tokens
from pillion.http.request import RequestHead
from pillion.http.response import ResponseHead
from pillion.telemetry.tracecontext import (
    new_request_id,
    new_traceparent,
    valid_request_id,
    valid_traceparent,
)

__all__ = [
    "IDENTITY_HEADER",
    "Forwarded",
    "request_head_for_upstream",
    "response_headers_for_client",
]


IDENTITY_HEADER = b"x-pillion-peer-identity"

# Fields Pillion writes itself on the way to the app, dropped from the client's copy.
_REWRITTEN = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-for",
    b"x-request-id",
    b"traceparent",
    IDENTITY_HEADER,
    b"http2-settings",
}
_RESPONSE_REWRITTEN = HOP_BY_HOP | {b"content-length"}


class Forwarded:
    """The ids a request was forwarded with (for the access log)."""

    __slots__ = ("request_id", "traceparent")

    def __init__(self, request_id: bytes, traceparent: bytes) -> None:
        self.request_id = request_id
        self.traceparent = traceparent


def request_head_for_upstream(
    head: RequestHead,
    client_ip: bytes,
    proto: bytes,
    default_host: bytes,
    *,
    path: bytes | None = None,
    remove: frozenset[bytes] = frozenset(),
    set_headers: tuple[tuple[bytes, bytes], ...] = (),
    add_headers: tuple[tuple[bytes, bytes], ...] = (),
    identity: bytes | None = None,
    identity_header: bytes = IDENTITY_HEADER,
    upgrade: bytes | None = None,
) -> tuple[bytes, Forwarded]:
    """The request head to send to the app, and the ids it carries.

    A route may rewrite the ``path`` (target) and remove, set or add headers
    (names lower case); Pillion's own forwarding headers are written after them.
    The client's copy of the identity header is always dropped; ``identity`` (from
    its certificate) is sent in it instead. ``upgrade`` is the ``Upgrade`` value
    to send (the protocols the gate allowed), with ``Connection: upgrade``.
    """
    named = head.connection_names
    if remove or set_headers:
        named = named | remove | {name for name, _ in set_headers}
    if identity_header != IDENTITY_HEADER:
        named = named | {identity_header}
    kept: list[bytes] = []
    forwarded_for = b""
    request_id = b""
    traceparent = b""
    trailers = False
    for name, value in head.headers:
        lower = name.lower()
        if lower in _REWRITTEN or lower in named:
            if lower == b"te" and lower not in remove:
                trailers = trailers or b"trailers" in connection_tokens(value)
            elif lower == b"x-forwarded-for":
                forwarded_for = forwarded_for + b", " + value if forwarded_for else value
            elif lower == b"x-request-id":
                request_id = value
            elif lower == b"traceparent":
                traceparent = value
            continue
        kept.append(b"%s: %s\r\n" % (name, value))
    if not (request_id and valid_request_id(request_id)):
        request_id = new_request_id()
    if not (traceparent and valid_traceparent(traceparent)):
        traceparent = new_traceparent()
    host = head.host or default_host
    lines = [
        b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (head.method, path or head.target, host),
        *kept,
        b"x-forwarded-for: %s, %s\r\n" % (forwarded_for, client_ip)
        if forwarded_for
        else b"x-forwarded-for: %s\r\n" % client_ip,
        b"x-forwarded-proto: %s\r\nx-forwarded-host: %s\r\n" % (proto, host),
        b"x-request-id: %s\r\ntraceparent: %s\r\n" % (request_id, traceparent),
    ]
    if set_headers:
        lines[1:1] = [b"%s: %s\r\n" % pair for pair in set_headers]
    if add_headers:
        lines[-3:-3] = [b"%s: %s\r\n" % pair for pair in add_headers]
    if identity is not None:
        lines.append(b"%s: %s\r\n" % (identity_header, identity))
    if trailers:
        lines.append(b"te: trailers\r\n")
    if upgrade:
        lines.append(b"connection: upgrade\r\nupgrade: %s\r\n" % upgrade)
    if head.body == "length":
        lines.append(b"content-length: %d\r\n" % head.content_length)
    elif head.body == "chunked":
        lines.append(b"transfer-encoding: chunked\r\n")
    elif head.method in (b"POST", b"PUT", b"PATCH"):
        lines.append(b"content-length: 0\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), Forwarded(request_id, traceparent)


def response_headers_for_client(
    head: ResponseHead,
    *,
    remove: frozenset[bytes] = frozenset(),
    set_headers: tuple[tuple[bytes, bytes], ...] = (),
    add_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Headers:
    """The upstream's response fields that travel on to the client, with a
    route's edits (names lower case): removed, set (replacing), added."""
    named = head.connection_names
    if remove or set_headers:
        named = named | remove | {name for name, _ in set_headers}
    headers = [
        (name, value)
        for name, value in head.headers
        if (lower := name.lower()) not in _RESPONSE_REWRITTEN and lower not in named
    ]
    if set_headers or add_headers:
        headers.extend(set_headers)
        headers.extend(add_headers)
    return headers
