"""The two sides of a request's trip to the app, as the pools and the exchange see
each other: an ``UpstreamUser`` (the exchange) asks a pool for an
``UpstreamChannel`` and is called back with the response.

A channel is one HTTP/1.1 connection while it carries one request, or one
stream of a multiplexed HTTP/2 connection; the exchange sends messages (a head,
body bytes, the end) and never frames them itself, so it works the same over
either protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pillion.http.errors import ResponseError, ResponseIncomplete

if TYPE_CHECKING:
    from pillion.http.headers import Headers
    from pillion.http.response import ResponseHead

__all__ = ["UpstreamChannel", "UpstreamRefused", "UpstreamUser"]


class UpstreamRefused(ResponseIncomplete):
    """The app did not process the request (an HTTP/2 ``GOAWAY`` past it, or
    ``REFUSED_STREAM``): it may be sent again on another connection, whatever
    its method (RFC 9113 §8.7)."""


class UpstreamUser(Protocol):
    """What an exchange offers the pool and its channel."""

    def on_upstream(self, channel: UpstreamChannel) -> None: ...

    def on_upstream_failure(self, status: int, flag: str, message: str) -> None: ...

    def on_upstream_lost(self, error: ResponseError) -> None: ...

    def on_response(self, head: ResponseHead) -> None: ...

    def on_response_body(self, data: bytes) -> None: ...

    def on_response_trailers(self, trailers: Headers) -> None: ...

    def on_response_end(self) -> None: ...

    def pause_downstream(self) -> None: ...

    def resume_downstream(self) -> None: ...

    def cork(self) -> None: ...

    def uncork(self) -> None: ...

    def on_upstream_bytes(self, data: bytes) -> None: ...

    def end_tunnel(self) -> None: ...

    @property
    def wants_upstream(self) -> bool: ...


class UpstreamChannel(Protocol):
    """Where one request goes: its head, its body, its end, then the response
    comes back to ``user``."""

    http2: bool  # the head it takes: HTTP/1.1 bytes (False) or HTTP/2 fields (True)
    requests: int  # requests its connection carried, this one included
    user: UpstreamUser | None
    closed: bool

    def send(self, head: bytes | Headers, body: list[bytes], end: bool, chunked: bool) -> None:
        """The request head, the body read so far, and whether that is all of it;
        ``chunked``: a body of unknown length (HTTP/1.1 frames it in chunks)."""

    def write(self, data: bytes) -> None:
        """More of the body (or, in a tunnel, bytes as they are)."""

    def end_request(self) -> None:
        """The body is complete."""

    def release(self) -> None:
        """The exchange ended cleanly: the connection may carry another request."""

    def close(self) -> None:
        """Not to be reused: closed (HTTP/1.1) or cancelled (an HTTP/2 stream)."""

    def abort(self) -> None: ...

    def pause_reading(self) -> None:
        """The client reads slower than the app writes: take no more from the app."""

    def resume_reading(self) -> None: ...
