"""The exception tree of the HTTP message layer.

``HttpError`` carries the status Pillion answers with and a short reason (sent
to the client, so never anything secret). ``RequestError`` is a client's bad
request (4xx, or 501/505 for what is well-formed but not supported);
``ResponseError`` is an upstream's bad response (the proxy answers 502).
``MalformedStream`` is an HTTP/2 request that breaks the protocol's own rules
(RFC 9113 §8.1.1): its stream is reset with ``PROTOCOL_ERROR``, not answered.
"""

from __future__ import annotations

__all__ = ["HttpError", "MalformedStream", "RequestError", "ResponseError", "ResponseIncomplete"]


class HttpError(Exception):
    """A message that cannot be handled; ``status`` is the answer to give."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}")


class RequestError(HttpError):
    """The client's request is malformed, too large or unsupported."""


class MalformedStream(RequestError):
    """An HTTP/2 request that is malformed: reset, and counted as a 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


class ResponseError(HttpError):
    """The upstream's response is malformed."""

    def __init__(self, reason: str) -> None:
        super().__init__(502, reason)


class ResponseIncomplete(ResponseError):
    """The upstream closed or reset the connection before the response ended."""
