"""A strict HTTP/1.1 request parser: bytes in, ``RequestHandler`` callbacks out.

llhttp (through httptools) rejects the request-smuggling shapes of RFC 9112
§6.3 and §11.2: ``Content-Length`` with ``Transfer-Encoding``, duplicate or
invalid ``Content-Length``, obs-fold, whitespace before a colon, invalid
characters, bare CR, malformed chunk sizes. On top of it this module enforces
what llhttp leaves to the server: exactly one ``Host`` in HTTP/1.1, versions
1.0 and 1.1 only, ``chunked`` as the only transfer coding, no ``CONNECT``, the
size limits (431, 414, 413), and absolute-form targets rewritten to origin-form.
Every rejection is a ``RequestError`` carrying its status; the connection must
then be answered and closed, and nothing of the request forwarded.

Upgrades (RFC 9110 §7.8): a request with ``Connection: upgrade`` and ``Upgrade``
but no body ends the parse (``upgraded``): what follows may be another
protocol, and the caller holds it (``take_held``) until it knows whether the
switch happened; if not, ``resume_after_upgrade`` and feed it again. A request
with an upgrade *and* a body is served as plain HTTP/1.1 (its ``upgrade`` is
False, so its upgrade is not offered to the app): its body is read with
HTTP/1.1 framing like any other and parsing goes on after it. llhttp would
skip such a body; the parser is put back in step with a framing-only head that
reaches no handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, NoReturn, Protocol

import httptools

from pillion.http.chunked import MAX_CHUNK_LINE, ChunkedFraming, open_line_length
from pillion.http.errors import RequestError
from pillion.http.headers import Headers, connection_tokens, lower_name

__all__ = ["ParserLimits", "RequestHandler", "RequestHead", "RequestParser"]

BodyKind = Literal["none", "length", "chunked"]


@dataclass(frozen=True)
class ParserLimits:
    max_header_size: int = 32 * 1024
    max_headers: int = 100
    max_uri_size: int = 8 * 1024
    max_body_size: int = 0  # 0: no limit


class RequestHead:
    """A request's line and headers, as received (header case kept); ``lowered``
    holds the names lower-cased, in the same order (made once, by the parser)."""

    __slots__ = (
        "body",
        "connection_names",
        "content_length",
        "expect_continue",
        "headers",
        "host",
        "keep_alive",
        "lowered",
        "method",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        headers: Headers,
        host: bytes,
        keep_alive: bool,
        body: BodyKind,
        content_length: int,
        connection_names: set[bytes],
        expect_continue: bool,
        upgrade: bool,
        lowered: list[bytes] | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.lowered = [lower_name(name) for name, _ in headers] if lowered is None else lowered
        self.host = host
        self.keep_alive = keep_alive
        self.body = body
        self.content_length = content_length
        self.connection_names = connection_names
        self.expect_continue = expect_continue
        self.upgrade = upgrade

    def __repr__(self) -> str:
        return f"<RequestHead {self.method!r} {self.target!r} HTTP/{self.version.decode()}>"


class RequestHandler(Protocol):
    """Receives a connection's requests in order."""

    def on_request(self, head: RequestHead) -> None: ...

    def on_request_body(self, data: bytes) -> None: ...

    def on_request_end(self) -> None: ...


_SUPPORTED_VERSIONS: Final = frozenset({"1.1", "1.0"})
# Fed to llhttp after an upgrade request with a body, so that it reads the body:
# framing only, its callbacks reach no handler.
_FRAMING_ONLY: Final = {
    "chunked": b"POST / HTTP/1.1\r\nhost: -\r\ntransfer-encoding: chunked\r\n\r\n",
    "length": b"POST / HTTP/1.1\r\nhost: -\r\ncontent-length: %d\r\n\r\n",
}

# How a chunked body's framing is being checked (``chunked.py``).
_NO_CHUNKS: Final = 0
_FOLLOWING: Final = 1  # followed from its first byte, each read before llhttp delivers it
_OPEN_LINE_ONLY: Final = 2  # its start could not be located: the line open at each read's end is


class RequestParser:
    """Parses the requests of one client connection (pipelined ones too)."""

    __slots__ = (
        "_begun",
        "_body_bytes",
        "_boundary",
        "_chunked",
        "_chunks",
        "_connection",
        "_content_length",
        "_continued",
        "_data",
        "_error",
        "_expect",
        "_framing",
        "_framing_only",
        "_handler",
        "_head_bytes",
        "_head_tail",
        "_header_bytes",
        "_headers",
        "_hosts",
        "_in_chunk_line",
        "_in_message",
        "_limits",
        "_lowered",
        "_open_line",
        "_parser",
        "_passed",
        "_upgrade_body",
        "_url",
        "held",
        "partial_head",
        "upgraded",
    )

    def __init__(self, handler: RequestHandler, limits: ParserLimits) -> None:
        self._handler = handler
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._error: RequestError | None = None
        self.partial_head = False  # inside a request's line and headers
        self._head_bytes = 0
        self.upgraded = False
        self.held = b""  # bytes after an upgrade request's head: perhaps not HTTP
        self._upgrade_body = ""  # the body kind of an upgrade request that has one
        self._framing_only = False  # llhttp is reading a framing-only head
        self._in_message = False  # between a request's first byte and its end
        # Where the current read's framing is known, to find a chunked body's start:
        self._data = b""  # the read being parsed
        self._boundary = -1  # where in it a request's head may start (-1: unknown)
        self._begun = 0  # requests begun since that point
        self._continued = False  # the read began inside a head
        self._passed: list[int] = []  # Content-Lengths of the requests ended since it
        self._head_tail = b""  # the last bytes of a read that ended inside a head
        self._chunks = _NO_CHUNKS
        self._framing: ChunkedFraming | None = None
        self._in_chunk_line = False  # llhttp is between chunks (for _OPEN_LINE_ONLY)
        self._open_line = 0
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: Headers = []
        self._lowered: list[bytes] = []
        self._header_bytes = 0
        self._hosts: list[bytes] = []
        self._content_length = -1
        self._chunked = False
        self._connection: set[bytes] = set()
        self._expect = False
        self._body_bytes = 0

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raise ``RequestError`` at the first violation."""
        if self.upgraded:
            self.held += data  # the caller holds these itself; kept for safety
            return
        was_partial = self.partial_head
        if self._chunks == _FOLLOWING:  # checked before llhttp delivers any of it
            self._boundary = self._follow(data, 0)
        elif was_partial or not self._in_message:
            self._boundary = 0
        elif self._chunks == _OPEN_LINE_ONLY:
            self._boundary = -1
            if self._in_chunk_line:
                self._check_open_line(data)
        elif not self._chunked:  # inside a Content-Length body: the next starts after it
            self._boundary = self._content_length - self._body_bytes
        else:
            self._boundary = -1
        self._data = data
        self._begun = 0
        self._continued = was_partial
        if self._passed:
            self._passed.clear()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            rest = data[upgrade.args[0] :]
            body, self._upgrade_body = self._upgrade_body, ""
            if not body:
                self.upgraded = True
                self.held = rest
                return
            self._read_body_after_upgrade(body)
            self.feed(rest)
            return
        except httptools.HttpParserCallbackError:
            error, self._error = self._error, None
            if error is None:  # pragma: no cover - our callbacks only raise RequestError
                raise
            raise error from None
        except httptools.HttpParserInvalidMethodError:
            raise RequestError(501, "method not implemented") from None
        except httptools.HttpParserError as exc:
            raise RequestError(400, _reason(exc)) from None
        finally:
            self._data = b""  # not kept alive with an idle connection
        if self.partial_head:
            if was_partial:
                # The head began in an earlier read and has not ended: all of ``data``
                # is head. (httptools buffers a partial field itself, so this bounds it.)
                self._head_bytes += len(data)
                if self._head_bytes > self._limits.max_header_size:
                    raise RequestError(431, "request header fields too large")
            # the head's last bytes, across reads: a read of one or two bytes keeps
            # those before it (its end may straddle three reads: "\r" "\n" "\r\n")
            self._head_tail = (self._head_tail + data)[-3:] if was_partial else data[-3:]
        if self._chunks == _OPEN_LINE_ONLY and self._in_chunk_line:
            self._open_line = open_line_length(data, self._open_line)
            if self._open_line > MAX_CHUNK_LINE:
                raise RequestError(400, "chunk line too long")

    def _check_open_line(self, data: bytes) -> None:
        """Before llhttp reads on: the line open at the end of the last read ends at
        this read's first LF (a chunk or trailer line holds none)."""
        newline = data.find(b"\n")
        length = self._open_line + (len(data) if newline < 0 else newline)
        if length > MAX_CHUNK_LINE:
            raise RequestError(400, "chunk line too long")

    def take_held(self) -> bytes:
        """The bytes read after an upgrade request's head (once)."""
        held, self.held = self.held, b""
        return held

    def resume_after_upgrade(self) -> None:
        """The upgrade did not happen: parse what comes next as HTTP/1.1 again."""
        self.upgraded = False

    def _read_body_after_upgrade(self, body: str) -> None:
        """llhttp skipped this upgrade request's body: have it read the body."""
        framing = _FRAMING_ONLY[body]
        if body == "length":
            framing = framing % self._content_length
        else:  # the body starts the rest of this read: follow it from there
            self._framing = ChunkedFraming()
            self._chunks = _FOLLOWING
        self._framing_only = True
        try:
            self._parser.feed_data(framing)
        finally:
            self._framing_only = False

    def _follow_new_body(self) -> None:
        """A chunked body begins in this read: check what of it the read holds, now."""
        start = self._body_start()
        if start < 0:  # behind another request of this read: bound the open line only
            self._chunks = _OPEN_LINE_ONLY
            self._in_chunk_line = True
            self._open_line = 0
            return
        self._framing = ChunkedFraming()
        self._chunks = _FOLLOWING
        try:
            end = self._follow(self._data, start)
        except RequestError as error:
            self._error = error  # raised in an llhttp callback: feed() re-raises it
            raise
        if end >= 0:  # the body ends in this read: another request may start there
            self._boundary = end
            self._begun = 0
            self._continued = False
            self._passed.clear()

    def _follow(self, data: bytes, start: int) -> int:
        """Check a followed body's framing in ``data``; return where it ends, or -1."""
        framing = self._framing
        assert framing is not None
        end = framing.scan(data, start)
        limit = self._limits.max_body_size
        if limit and framing.wire_bytes > limit:  # the body as sent, framing and all
            raise RequestError(413, "content too large")
        if end >= 0:
            self._framing = None
            self._chunks = _NO_CHUNKS
        return end

    def _body_start(self) -> int:
        """Where in this read the body of the request whose head just ended starts.

        From the known boundary, the requests that ended before it in this read are
        stepped over (each: its head, then its ``Content-Length`` bytes)."""
        data = self._data
        pos = self._boundary
        passed = self._passed
        if pos < 0 or self._begun != len(passed) + (0 if self._continued else 1):
            return -1  # behind a request whose end is not known
        for index in range(len(passed) + 1):
            if index == 0 and self._continued:  # the read began inside a head
                tail = self._head_tail
                end = (tail + data[:3]).find(b"\r\n\r\n")
                if end >= 0:  # its end straddles the two reads
                    end -= len(tail)
                else:
                    end = data.find(b"\r\n\r\n")
            else:
                while pos < len(data) and data[pos] in b"\r\n":
                    pos += 1  # empty lines before a request line are ignored
                end = data.find(b"\r\n\r\n", pos)
            if end < 0:
                return -1
            pos = end + 4
            if index < len(passed):
                pos += max(passed[index], 0)
        return pos

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        if self._framing_only:
            return
        self._in_message = True
        self._begun += 1
        self.partial_head = True
        self._head_bytes = 0
        self._reset()

    def on_url(self, url: bytes) -> None:
        if self._framing_only:
            return
        self._url += url
        if len(self._url) > self._limits.max_uri_size:
            self._fail(414, "URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._framing_only:
            return
        if not self.partial_head:  # a trailer field: counted, never merged into the head
            self._header_bytes += len(name) + len(value) + 4
            if self._header_bytes + len(self._url) > self._limits.max_header_size:
                self._fail(431, "request header fields too large")
            return
        headers = self._headers
        headers.append((name, value))
        self._header_bytes += len(name) + len(value) + 4
        if len(headers) > self._limits.max_headers:
            self._fail(431, "too many header fields")
        if self._header_bytes + len(self._url) > self._limits.max_header_size:
            self._fail(431, "request header fields too large")
        lower = lower_name(name)
        self._lowered.append(lower)
        if lower == b"host":
            self._hosts.append(value)
        elif lower == b"content-length":
            self._content_length = int(value)  # llhttp checked: digits only, one header
        elif lower == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                self._fail(501, "transfer coding not implemented (only chunked)")
            self._chunked = True
        elif lower == b"connection":
            self._connection |= connection_tokens(value)
        elif lower == b"expect":
            if value.strip().lower() != b"100-continue":
                self._fail(417, "expectation failed")
            self._expect = True

    def on_headers_complete(self) -> None:
        if self._framing_only:
            return
        parser = self._parser
        version = parser.get_http_version()
        if version not in _SUPPORTED_VERSIONS:
            self._fail(505, "HTTP version not supported")
        method: bytes = parser.get_method()
        if method == b"CONNECT":
            self._fail(501, "CONNECT is not supported")
        hosts = self._hosts
        if len(hosts) > 1:
            self._fail(400, "more than one Host header")
        target = self._url
        host = hosts[0] if hosts else b""
        if target[:1] == b"*" and (target != b"*" or method != b"OPTIONS"):
            self._fail(400, "invalid request target")  # RFC 9112 §3.2.4: OPTIONS * only
        if target[:1] not in (b"/", b"*"):
            target, host = self._origin_form(target)
        elif not hosts and version == "1.1":
            self._fail(400, "missing Host header")
        limits = self._limits
        body: BodyKind = "none"
        if self._chunked:
            body = "chunked"
        elif self._content_length > 0:
            body = "length"
            if limits.max_body_size and self._content_length > limits.max_body_size:
                self._fail(413, "content too large")
        upgrade = parser.should_upgrade()
        keep_alive = parser.should_keep_alive()
        if upgrade and body != "none":
            if not keep_alive:  # llhttp reads nothing after it, not even its body
                self._fail(400, "an upgrade request with a body on a closing connection")
            upgrade = False  # served as plain HTTP/1.1, body and all
            self._upgrade_body = body  # (and its framing followed from there)
        elif body == "chunked":
            self._follow_new_body()
        self.partial_head = False
        self._handler.on_request(
            RequestHead(
                method,
                target,
                version.encode(),
                self._headers,
                host,
                keep_alive,
                body,
                max(self._content_length, 0),
                self._connection,
                self._expect,
                upgrade,
                self._lowered,
            )
        )

    def on_body(self, data: bytes) -> None:
        self._in_chunk_line = False
        self._body_bytes += len(data)
        limit = self._limits.max_body_size
        if limit and self._body_bytes > limit:
            self._fail(413, "content too large")
        self._handler.on_request_body(data)

    def on_chunk_complete(self) -> None:
        self._in_chunk_line = True  # the next chunk's line, or the end of the body

    def on_message_complete(self) -> None:
        self._in_message = False
        self._in_chunk_line = False
        if self._upgrade_body:
            return  # llhttp skipped the body: the request ends after the framing-only one
        if self._boundary >= 0 and not self._chunked and (self._begun or self._continued):
            self._passed.append(self._content_length)  # see _body_start
        self._handler.on_request_end()

    # -- helpers --

    def _origin_form(self, target: bytes) -> tuple[bytes, bytes]:
        """``http://host/path?q`` -> (``/path?q``, ``host``); RFC 9112 §3.2.2."""
        try:
            url = httptools.parse_url(target)
        except httptools.HttpParserInvalidURLError:
            self._fail(400, "invalid request target")
        if url.schema not in (b"http", b"https") or not url.host:
            self._fail(400, "invalid request target")
        path = url.path or b"/"
        if url.query is not None:
            path += b"?" + url.query
        host = url.host if url.port is None else url.host + b":%d" % url.port
        return path, host

    def _fail(self, status: int, reason: str) -> NoReturn:
        self._error = RequestError(status, reason)
        raise self._error


def _reason(exc: Exception) -> str:
    text = str(exc) or "malformed request"
    return text[:100]
