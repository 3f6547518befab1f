"""Parsing an upstream's responses: bytes in, ``ResponseHandler`` callbacks out.

One request is outstanding per upstream connection, so anything after the end
of a response (an app sending more body than its ``Content-Length``, say) makes
the connection ``broken``: it is never reused, and the client still gets exactly
the response the headers announced. A response without ``Content-Length`` or
chunked coding ends when the upstream closes (``feed_eof``).
"""

from __future__ import annotations

from typing import Final, Literal, Protocol

import httptools

from pillion.http.chunked import MAX_CHUNK_LINE, open_line_length
from pillion.http.errors import ResponseError, ResponseIncomplete
from pillion.http.headers import Headers, connection_tokens, lower_name

__all__ = ["ResponseHandler", "ResponseHead", "ResponseParser"]

ResponseBody = Literal["none", "length", "chunked", "close"]

MAX_RESPONSE_HEADER_SIZE: Final = 64 * 1024


class ResponseHead:
    """A response's status and headers, as received; ``lowered`` holds the names
    lower-cased, in the same order (made once, by the parser)."""

    __slots__ = (
        "body",
        "connection_names",
        "content_length",
        "headers",
        "keep_alive",
        "lowered",
        "status",
    )

    def __init__(
        self,
        status: int,
        headers: Headers,
        keep_alive: bool,
        body: ResponseBody,
        content_length: int,
        connection_names: set[bytes],
        lowered: list[bytes] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.lowered = [lower_name(name) for name, _ in headers] if lowered is None else lowered
        self.keep_alive = keep_alive
        self.body = body
        self.content_length = content_length
        self.connection_names = connection_names


class ResponseHandler(Protocol):
    def on_response(self, head: ResponseHead) -> None: ...

    def on_response_body(self, data: bytes) -> None: ...

    def on_response_end(self) -> None: ...


class ResponseParser:
    """Parses the responses on one upstream connection."""

    __slots__ = (
        "_chunked",
        "_coded",
        "_connection",
        "_content_length",
        "_head_bytes",
        "_headers",
        "_in_chunk_line",
        "_in_head",
        "_in_message",
        "_lowered",
        "_open_line",
        "_parser",
        "_until_close",
        "broken",
        "expecting",
        "handler",
        "tunnel_data",
        "upgraded",
    )

    def __init__(self, handler: ResponseHandler) -> None:
        self.handler = handler
        self._parser = httptools.HttpResponseParser(self)
        self._in_message = False
        self._until_close = False
        self.broken = False
        self.expecting = False  # a request was sent and its final response is awaited
        self.upgraded = False  # a 101 switched the connection to another protocol
        self.tunnel_data = b""
        self._head_bytes = 0
        self._headers: Headers = []
        self._lowered: list[bytes] = []
        self._content_length = -1
        self._chunked = False
        self._coded = False
        self._connection: set[bytes] = set()
        self._in_head = False
        self._in_chunk_line = False  # between chunks: reading a chunk or trailer line
        self._open_line = 0

    def feed(self, data: bytes) -> None:
        if self.broken:
            return
        if not self.expecting and not self._in_message:
            self.broken = True  # bytes nobody asked for
            return
        was_in_head = self._in_head
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgraded = True
            self.tunnel_data = data[upgrade.args[0] :]
        except httptools.HttpParserCallbackError as exc:
            self.broken = True
            cause = exc.__context__
            if isinstance(cause, ResponseError) and (self.expecting or self._in_message):
                raise cause from None
        except httptools.HttpParserError as exc:
            self.broken = True
            if self.expecting or self._in_message:
                raise ResponseError(f"malformed response: {str(exc)[:80]}") from None
            return
        # llhttp sets no bound on a head split over reads nor on a chunk line.
        if self._in_head and was_in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_RESPONSE_HEADER_SIZE:
                self.broken = True
                raise ResponseError("response header too large")
        elif self._in_chunk_line:
            self._open_line = open_line_length(data, self._open_line)
            if self._open_line > MAX_CHUNK_LINE:
                self.broken = True
                raise ResponseError("chunk line too long")

    def feed_eof(self) -> None:
        """The upstream closed: end a read-until-close body, or fail a partial response."""
        if self._in_message and self._until_close:
            self._in_message = False
            self.expecting = False
            self.handler.on_response_end()
        elif self._in_message or self.expecting:
            raise ResponseIncomplete("upstream closed the connection before the response ended")

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        if not self.expecting:
            self.broken = True
            raise ResponseError("response without a request")
        self._in_message = True
        self._in_head = True
        self._head_bytes = 0
        self._headers = []
        self._lowered = []
        self._content_length = -1
        self._chunked = False
        self._coded = False  # a Transfer-Encoding was given
        self._connection = set()
        self._until_close = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_RESPONSE_HEADER_SIZE:
            raise ResponseError("response header too large")
        if not self._in_head:
            return  # a trailer field: counted, never merged into the head
        self._headers.append((name, value))
        lower = lower_name(name)
        self._lowered.append(lower)
        if lower == b"content-length":
            self._content_length = int(value)
        elif lower == b"transfer-encoding":
            # As llhttp: chunked when it is the last coding; else read until close.
            self._coded = True
            self._chunked = value.rsplit(b",", 1)[-1].strip(b" \t").lower() == b"chunked"
        elif lower == b"connection":
            self._connection |= connection_tokens(value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        status: int = parser.get_status_code()
        if status < 100 or (status < 200 and status > 103 and self._announces_body()):
            # llhttp reads a body for these, where none may be (RFC 9110 §15.2)
            raise ResponseError(f"malformed response: status {status}")
        body: ResponseBody
        if status < 200 or status in (204, 304):
            body = "none"
        elif self._chunked:
            body = "chunked"
            self._in_chunk_line = True
            self._open_line = 0
        elif self._coded:
            body = "close"  # a final coding other than chunked: until the upstream closes
            self._until_close = True
        elif self._content_length >= 0:
            body = "length"
        else:
            body = "close"
            self._until_close = True
        keep_alive = parser.should_keep_alive() and body != "close"
        self.handler.on_response(
            ResponseHead(
                status,
                self._headers,
                keep_alive,
                body,
                max(self._content_length, 0),
                self._connection,
                self._lowered,
            )
        )

    def _announces_body(self) -> bool:
        return self._coded or self._content_length >= 0

    def on_body(self, data: bytes) -> None:
        self._in_chunk_line = False
        self.handler.on_response_body(data)

    def on_chunk_complete(self) -> None:
        self._in_chunk_line = True  # the next chunk's line, or the end of the body

    def on_message_complete(self) -> None:
        self._in_message = False
        self._in_chunk_line = False
        status: int = self._parser.get_status_code()
        if status == 101:
            self.expecting = False  # switched protocols: no more HTTP on this connection
            return
        if 100 <= status < 200:
            return  # an interim response: the final one is still awaited
        self.expecting = False
        self.handler.on_response_end()
