"""What the app receives and what the client receives: header rewriting, without I/O.

To the app: hop-by-hop fields removed (RFC 9110 §7.6.1, with those named in
``Connection``), ``Host`` from the request (or its absolute-form target),
``X-Forwarded-For`` appended, ``X-Forwarded-Proto`` and ``X-Forwarded-Host``
set, ``x-request-id`` kept when valid or generated, ``traceparent`` kept when
valid or started (with tracing: continued from Pillion's own span, and B3 with
it when asked for), and Pillion's own body framing. ``Expect`` is answered by
Pillion itself and not forwarded. ``TE: trailers`` is kept (gRPC needs it; RFC
9110 §10.1.4), any other ``TE`` dropped. ``Upgrade`` travels only as the gate
admitted it (``upgrade``); ``HTTP2-Settings`` never does (RFC 9113 §3.1 retired
the h2c upgrade, and it smuggles HTTP/2 past every check).
To the client: hop-by-hop fields removed and Pillion's own framing.
The same request goes to an HTTP/2 app as fields (``request_fields_for_upstream``):
pseudo-headers first, names lower-cased, no ``Host`` (``:authority`` carries it).
"""

from __future__ import annotations

from typing import Final

from librt.strings import BytesWriter

from pillion.http.headers import HOP_BY_HOP, Headers, connection_tokens
from pillion.http.request import RequestHead
from pillion.http.response import ResponseHead
from pillion.http.serialize import write_fields
from pillion.telemetry.tracecontext import (
    Propagation,
    SpanContext,
    new_request_id,
    new_traceparent,
    valid_request_id,
    valid_traceparent,
)

__all__ = [
    "IDENTITY_HEADER",
    "Forwarded",
    "request_fields_for_upstream",
    "request_head_for_upstream",
    "response_headers_for_client",
]


IDENTITY_HEADER: Final = b"x-pillion-peer-identity"

# Fields Pillion writes itself on the way to the app, dropped from the client's copy.
_REWRITTEN: Final = HOP_BY_HOP | {
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
_RESPONSE_REWRITTEN: Final = HOP_BY_HOP | {b"content-length"}


class Forwarded:
    """The ids a request was forwarded with (for the access log), and Pillion's
    span when it traces."""

    __slots__ = ("request_id", "span", "traceparent")

    def __init__(
        self, request_id: bytes, traceparent: bytes, span: SpanContext | None = None
    ) -> None:
        self.request_id = request_id
        self.traceparent = traceparent
        self.span = span


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
    propagation: Propagation | None = None,
) -> tuple[bytes, Forwarded]:
    """The HTTP/1.1 request head to send to the app, and the ids it carries.

    A route may rewrite the ``path`` (target) and remove, set or add headers
    (names lower case); Pillion's own forwarding headers are written after them.
    The client's copy of the identity header is always dropped; ``identity`` (from
    its certificate) is sent in it instead. ``upgrade`` is the ``Upgrade`` value
    to send (the protocols the gate allowed), with ``Connection: upgrade``.
    With ``propagation`` (tracing), the app is sent Pillion's span as the parent.
    """
    fields, host, forwarded = _forwarded_fields(
        head, client_ip, proto, default_host, remove, set_headers, add_headers,
        identity, identity_header, propagation, lower=False,
    )  # fmt: skip
    out = BytesWriter()  # one growing buffer (see ``serialize.head``)
    out.write(head.method)
    out.write(b" ")
    out.write(path or head.target)
    out.write(b" HTTP/1.1\r\nhost: ")
    out.write(host)
    out.write(b"\r\n")
    write_fields(out, fields)
    if upgrade:
        out.write(b"connection: upgrade\r\nupgrade: ")
        out.write(upgrade)
        out.write(b"\r\n")
    if head.body == "length":
        out.write(b"content-length: %d\r\n" % head.content_length)
    elif head.body == "chunked":
        out.write(b"transfer-encoding: chunked\r\n")
    elif head.method in (b"POST", b"PUT", b"PATCH"):
        out.write(b"content-length: 0\r\n")
    out.write(b"\r\n")
    return out.getvalue(), forwarded


def request_fields_for_upstream(
    head: RequestHead,
    client_ip: bytes,
    proto: bytes,
    default_host: bytes,
    *,
    scheme: bytes = b"http",
    path: bytes | None = None,
    remove: frozenset[bytes] = frozenset(),
    set_headers: tuple[tuple[bytes, bytes], ...] = (),
    add_headers: tuple[tuple[bytes, bytes], ...] = (),
    identity: bytes | None = None,
    identity_header: bytes = IDENTITY_HEADER,
    grpc: bool = False,
    propagation: Propagation | None = None,
) -> tuple[Headers, Forwarded]:
    """The same request as HTTP/2 fields (RFC 9113 §8.3.1): the pseudo-headers
    (``:authority`` from the request's host), then lower-case fields; the
    ``scheme`` is the upstream connection's. No upgrade travels over HTTP/2.
    A gRPC call always carries ``te: trailers`` (gRPC servers refuse it without,
    and an HTTP/1.1 client may not have sent it: its trailers are then dropped)."""
    fields, host, forwarded = _forwarded_fields(
        head, client_ip, proto, default_host, remove, set_headers, add_headers,
        identity, identity_header, propagation, lower=True, trailers=grpc,
    )  # fmt: skip
    pseudo = [
        (b":method", head.method),
        (b":scheme", scheme),
        (b":authority", host),
        (b":path", path or head.target),
    ]
    pseudo.extend(fields)
    if head.body == "length":
        pseudo.append((b"content-length", b"%d" % head.content_length))
    return pseudo, forwarded


def _forwarded_fields(
    head: RequestHead,
    client_ip: bytes,
    proto: bytes,
    default_host: bytes,
    remove: frozenset[bytes],
    set_headers: tuple[tuple[bytes, bytes], ...],
    add_headers: tuple[tuple[bytes, bytes], ...],
    identity: bytes | None,
    identity_header: bytes,
    propagation: Propagation | None,
    *,
    lower: bool,
    trailers: bool = False,
) -> tuple[Headers, bytes, Forwarded]:
    """The fields every protocol sends the app after its own first line or
    pseudo-headers (``lower``: names lower-cased, as HTTP/2 requires), the host,
    and the ids."""
    named = head.connection_names
    if remove or set_headers:
        named = named | remove | {name for name, _ in set_headers}
    if identity_header != IDENTITY_HEADER:
        named = named | {identity_header}
    b3: list[tuple[bytes, bytes]] | None = None
    if propagation is not None and propagation.names:
        named = named | propagation.names
        b3 = []
    fields: Headers = list(set_headers) if set_headers else []
    forwarded_for = b""
    request_id = b""
    traceparent = b""
    headers = head.headers
    lowered = head.lowered
    for index in range(len(headers)):
        low = lowered[index]
        if low in _REWRITTEN or low in named:
            value = headers[index][1]
            if low == b"te" and low not in remove:
                trailers = trailers or b"trailers" in connection_tokens(value)
            elif low == b"x-forwarded-for":
                forwarded_for = forwarded_for + b", " + value if forwarded_for else value
            elif low == b"x-request-id":
                request_id = value
            elif low == b"traceparent":
                traceparent = value
            elif b3 is not None and (low == b"b3" or low.startswith(b"x-b3-")):
                b3.append((low, value))
            continue
        fields.append((low, headers[index][1]) if lower else headers[index])
    if not (request_id and valid_request_id(request_id)):
        request_id = new_request_id()
    span: SpanContext | None = None
    if propagation is not None:
        span = propagation.start(traceparent, b3)
        traceparent = span.traceparent()
    elif not (traceparent and valid_traceparent(traceparent)):
        traceparent = new_traceparent()
    host = head.host or default_host
    if add_headers:
        fields.extend(add_headers)
    fields.append(
        (
            b"x-forwarded-for",
            b"".join([forwarded_for, b", ", client_ip]) if forwarded_for else client_ip,
        )
    )
    fields.append((b"x-forwarded-proto", proto))
    fields.append((b"x-forwarded-host", host))
    fields.append((b"x-request-id", request_id))
    if span is None:
        fields.append((b"traceparent", traceparent))
    else:
        assert propagation is not None
        fields.extend(propagation.headers(span))
    if identity is not None:
        fields.append((identity_header, identity))
    if trailers:
        fields.append((b"te", b"trailers"))
    return fields, host, Forwarded(request_id, traceparent, span)


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
    fields = head.headers
    lowered = head.lowered
    headers = [
        fields[index]
        for index in range(len(fields))
        if (lower := lowered[index]) not in _RESPONSE_REWRITTEN and lower not in named
    ]
    if set_headers or add_headers:
        headers.extend(set_headers)
        headers.extend(add_headers)
    return headers
