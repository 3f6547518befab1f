"""A small HTTP/1.1 server as a component: the base of the admin and status servers.

It speaks through the proxy's own strict parser (``pillion.http.request``), so the
control ports refuse what the data plane refuses, and it costs no web framework at
start (aiohttp's server and client took about 12 MiB and 130 ms of every start).

Routes are exact paths; a GET route answers HEAD too; an unknown path is 404, a
known one with another method 405 (with ``Allow``). A handler raises ``HttpError``
to refuse. Requests with a body above ``max_request_size`` get 413 before any
handler runs; a head above 8 KiB gets 431 and a request line above 8 KiB 414.
Requests on a connection are answered in order, one at a time. A connection is
closed when a request takes more than 30 s to arrive whole, or after 75 s idle.

Draining stops the listener, then waits for the requests in flight to finish
(answering them with ``Connection: close``) before closing connections, so a body
still arriving is not cut off.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import json
import logging
import typing
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, unquote

from pillion.components import Component, ComponentStartError
from pillion.config.types import ListenAddress
from pillion.http.errors import RequestError
from pillion.http.request import ParserLimits, RequestHead, RequestParser
from pillion.http.serialize import CONTINUE, local_response, status_line

__all__ = ["HttpError", "HttpServerComponent", "Request", "Response"]

_MAX_HEAD = 8 * 1024  # nginx's large_client_header_buffers line, for the whole head
# Seconds from a request's first byte to its last: the timer is not moved by the bytes
# that trickle in (a slow sender cannot hold a connection by sending one at a time).
_REQUEST_TIMEOUT = 30.0
_IDLE_TIMEOUT = 75.0  # seconds a keep-alive connection waits for its next request
_LINGER_TIME = 5.0  # seconds a refused connection reads and drops what still comes


class Request:
    """A whole request: its line, its headers (names lower case) and its body."""

    __slots__ = ("body", "headers", "method", "path", "query", "remote")

    def __init__(self, head: RequestHead, body: bytes, remote: str) -> None:
        self.method = head.method.decode("latin-1")
        target = head.target.decode("latin-1")
        path, _, query = target.partition("?")
        self.path = unquote(path)
        self.query = dict(parse_qsl(query))
        self.headers = {name.lower().decode("latin-1"): value.decode("latin-1")
                        for name, value in head.headers}  # fmt: skip
        self.body = body
        self.remote = remote

    @property
    def host(self) -> str:
        return self.headers.get("host", "")


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: bytes = b"",
        *,
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers

    @classmethod
    def json(cls, value: object, *, status: int = 200) -> Response:
        # json's spacing, as the admin and status servers have always answered
        return cls(json.dumps(value).encode(), status=status, content_type="application/json")


class HttpError(Exception):
    """A refusal: its status, a plain-text message and any extra headers."""

    def __init__(self, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(text)
        self.response = Response(text.encode(), status=status, headers=headers)


Handler = Callable[[Request], Awaitable[Response]]


class HttpServerComponent(Component):
    """A component that serves its routes on one address."""

    kind = "control"

    def __init__(self, name: str, listen: ListenAddress, max_request_size: int) -> None:
        self.name = name
        self.listen = listen
        self.max_request_size = max_request_size
        self.bound: ListenAddress | None = None
        self.draining = False
        self._routes: dict[str, dict[str, Handler]] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._log = logging.getLogger(f"pillion.{name}")
        self.add_routes()

    @abc.abstractmethod
    def add_routes(self) -> None:
        """Add this server's routes (``route``)."""

    def route(self, method: str, path: str, handler: Handler) -> None:
        methods = self._routes.setdefault(path, {})
        methods[method] = handler
        if method == "GET":
            methods.setdefault("HEAD", handler)

    async def admit(self, request: Request) -> None:
        """Raise ``HttpError`` to refuse ``request`` before its handler (every route)."""

    @property
    def started(self) -> bool:
        return self.bound is not None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                lambda: _Connection(self), self.listen.host, self.listen.port, reuse_address=True
            )
        except OSError as exc:
            reason = (
                "address already in use"
                if exc.errno == errno.EADDRINUSE
                else (exc.strerror or str(exc))
            )
            raise ComponentStartError(
                self.name, f"cannot listen on {self.listen}: {reason}"
            ) from exc
        self._server = server
        host, port = server.sockets[0].getsockname()[:2]
        self.bound = ListenAddress(host, port)
        self._log.info("listening", extra={"address": str(self.bound)})

    async def drain(self, deadline: float) -> None:
        server = self._server
        if server is None:
            return
        self.draining = True
        server.close()  # new connections are refused from here on
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # let requests already accepted reach their handlers
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - loop.time()))
        if self._in_flight:
            self._log.warning("drain deadline passed", extra={"in_flight": self._in_flight})
        for connection in list(self._connections):
            connection.close_when_idle()

    async def close(self) -> None:
        server, self._server = self._server, None
        self.bound = None
        for connection in list(self._connections):
            connection.abort()
        if server is not None:
            server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    # -- from the connections --

    def opened(self, connection: _Connection) -> None:
        self._connections.add(connection)

    def closed(self, connection: _Connection) -> None:
        self._connections.discard(connection)

    def limits(self) -> ParserLimits:
        return ParserLimits(
            max_header_size=_MAX_HEAD,
            max_uri_size=_MAX_HEAD,
            max_body_size=self.max_request_size,
        )

    def request_began(self) -> None:
        """A request's head arrived: in flight until its response is written."""
        self._in_flight += 1
        self._idle.clear()

    def request_ended(self) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()

    async def respond(self, request: Request) -> Response:
        """The answer to one whole request: admitted, routed, handled."""
        try:
            await self.admit(request)  # first: an unknown path tells a stranger nothing
            methods = self._routes.get(request.path)
            if methods is None:
                return Response(b"404: Not Found", status=404)
            handler = methods.get(request.method)
            if handler is None:
                allow = ", ".join(sorted(methods))
                return Response(b"405: Method Not Allowed", status=405, headers=(("Allow", allow),))
            return await handler(request)
        except HttpError as error:
            return error.response
        except Exception:
            self._log.exception("handler failed", extra={"path": request.path})
            return Response(b"500: Internal Server Error", status=500)


class _Connection(asyncio.Protocol):
    """One client connection: whole requests in, their responses out, in order."""

    def __init__(self, server: HttpServerComponent) -> None:
        self.server = server
        self.parser = RequestParser(self, server.limits())
        self.transport: asyncio.Transport | None = None
        self.remote = ""
        self.waiting: deque[tuple[RequestHead, bytes]] = deque()
        self.head: RequestHead | None = None
        self.body: list[bytes] = []
        self.owed = 0  # requests whose head arrived and whose response is not written
        self.busy = False
        self.closing = False
        self.refused: RequestError | None = None  # answered after the responses owed
        self.timer: asyncio.TimerHandle | None = None
        self.timer_kind = ""  # "request", "idle" or none

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is alike
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if peer else ""
        self.server.opened(self)
        self._arm("idle")

    def data_received(self, data: bytes) -> None:
        if self.closing or self.refused is not None:
            return
        if self.timer_kind != "request":
            self._arm("request")  # from this request's first byte to its last
        try:
            self.parser.feed(data)
        except RequestError as error:
            self._refuse(error)
            self._next()  # the whole requests before it are still answered
            return
        if self.parser.upgraded:  # no protocol switch here: answered, then closed
            self.parser.take_held()
            self.closing = True
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._disarm()
        for _ in range(self.owed - (1 if self.busy else 0)):
            self.server.request_ended()  # never to be answered (the busy one ends itself)
        self.owed = 1 if self.busy else 0
        self.server.closed(self)

    # -- RequestHandler, from the parser --

    def on_request(self, head: RequestHead) -> None:
        self.head = head
        self.body = []
        self.owed += 1
        self.server.request_began()
        if head.expect_continue and self.transport is not None:
            self.transport.write(CONTINUE)

    def on_request_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_request_end(self) -> None:
        if self.head is not None:
            self.waiting.append((self.head, b"".join(self.body)))
        self.head = None
        self.body = []

    # -- answering --

    def _next(self) -> None:
        """Answer the next whole request if none is being answered; set the timer."""
        if not self.busy and self.waiting:
            self.busy = True
            head, body = self.waiting.popleft()
            task = asyncio.ensure_future(self._answer(head, body))
            task.add_done_callback(_retrieve)
        if self.head is not None or self.parser.partial_head:  # a request is arriving
            if self.timer_kind != "request":
                self._arm("request")
        elif self.busy:
            self._disarm()  # a handler may take its time (/prestop waits for a drain)
        else:
            self._arm("idle")

    async def _answer(self, head: RequestHead, body: bytes) -> None:
        response = await self.server.respond(Request(head, body, self.remote))
        close = not head.keep_alive or self.server.draining or (self.closing and not self.waiting)
        self._write(head, response, close)
        self.owed -= 1
        self.server.request_ended()
        self.busy = False
        if close:
            self._close()
        elif self.refused is not None and not self.waiting:
            self._refuse(self.refused)
        else:
            self._next()

    def _write(self, head: RequestHead, response: Response, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [
            status_line(response.status),
            f"Content-Type: {response.content_type}\r\n".encode(),
            f"Content-Length: {len(response.body)}\r\n".encode(),
        ]
        lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in response.headers]
        if close:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        if head.method != b"HEAD":
            lines.append(response.body)
        self.transport.write(b"".join(lines))

    def _refuse(self, error: RequestError) -> None:
        """A malformed or oversized request: answered after those owed, then closed."""
        if self.busy or self.waiting:
            self.refused = error
            return
        self.closing = True
        if self.transport is not None:
            self.transport.write(local_response(error.status, error.reason))
        self._linger()

    def _linger(self) -> None:
        """Close after refusing a request the client may still be sending (a body
        over the limit): closed at once with its bytes unread, the kernel would send
        a reset, which can discard the answer before the client reads it. So, as the
        proxy does (nginx's lingering close): the answer is followed by a FIN, what
        still comes is read and dropped, and the connection closes when the client's
        side does, or after ``_LINGER_TIME``."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(_LINGER_TIME, self._close)
        self.timer_kind = "linger"

    def close_when_idle(self) -> None:
        self.closing = True
        if not self.owed:
            self._close()

    def _close(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.abort()

    # -- timers: a slow head, or an idle keep-alive connection, is closed --

    def _arm(self, kind: str) -> None:
        self._disarm()
        delay = _REQUEST_TIMEOUT if kind == "request" else _IDLE_TIMEOUT
        self.timer = asyncio.get_running_loop().call_later(delay, self._close)
        self.timer_kind = kind

    def _disarm(self) -> None:
        self.timer_kind = ""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("pillion.control").error("request task failed", exc_info=task.exception())
