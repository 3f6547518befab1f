"""One request and its response, from the client's head to the app and back.

Protocol-neutral: the exchange knows its downstream (an HTTP/1.1 connection
today) only as a ``Downstream``, and where it was accepted only by the
``ExchangeSettings`` handed in. Driven entirely by callbacks: the downstream
feeds the request (``start``, ``on_body``, ``on_request_complete``), the pool
hands over an upstream connection (``on_upstream``), and the upstream's response
parser feeds the response (``on_response``, ``on_response_body``,
``on_response_end``). No task per request; one timer (the request timeout).

``start`` asks the listener's ``Gate`` first: a refusal is answered at once and
nothing is forwarded; a JWT whose keys are being fetched waits for them.

Failures before the response began become Pillion's own short response (503
``UF``, 504 ``UT``, 502 ``UC``/``UPE``); after, the client connection is closed
so the truncation is visible. A request on a reused keep-alive connection that
the app closed before answering is retried once on a new connection when it had
no body (the app never saw it). Retries by policy: ``retrying.py``.

An upgrade the gate allowed (WebSocket by default) is forwarded with its
``Upgrade``; if the app answers 101 naming a protocol that was offered, the
exchange becomes a tunnel: bytes are copied both ways until either side closes,
then it is counted (code 101, bytes in and out). A 101 for anything else is a
bad response (502 ``UPE``): only an admitted upgrade opens a tunnel.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, Final, Protocol

from pillion.http.errors import ResponseError, ResponseIncomplete
from pillion.http.grpc import (
    code_for_status,
    format_timeout,
    is_grpc,
    parse_timeout,
    reply_headers,
    status_in,
)
from pillion.http.headers import HeaderPairs, Headers
from pillion.http.request import ParserLimits, RequestHead
from pillion.http.response import ResponseHead
from pillion.proxy import flags
from pillion.proxy.channels import UpstreamRefused
from pillion.proxy.deadlines import Deadline, Deadlines
from pillion.proxy.edits import NO_EDITS
from pillion.proxy.forwarding import (
    IDENTITY_HEADER,
    Forwarded,
    request_fields_for_upstream,
    request_head_for_upstream,
    response_headers_for_client,
)
from pillion.proxy.gate import Admitted, Gate, Peer, Pending
from pillion.proxy.retrying import Retries
from pillion.telemetry.tracecontext import Propagation

if TYPE_CHECKING:
    from pillion.proxy.channels import UpstreamChannel
    from pillion.proxy.cluster import Target
    from pillion.proxy.listening import ListeningConnection

__all__ = ["ConnectionHost", "Downstream", "Exchange", "ExchangeSettings", "Observer"]
_BUFFER_LIMIT: Final = 64 * 1024  # request body held while the upstream connection is made


class Downstream(Peer, Protocol):
    """What an exchange needs of the client side it serves (an HTTP/1.1
    connection, or an HTTP/2 stream): the response as messages, framed by the
    downstream for its protocol; flow control; the end."""

    @property
    def draining(self) -> bool:
        """The listener is draining: the connection ends after this exchange."""

    def send_continue(self) -> None:
        """An interim 100: the client may send the body it announced."""

    def send_head(
        self, exchange: Exchange, status: int, headers: Headers, body: str, length: int
    ) -> None:
        """The response head; ``body`` is the app's framing (``none``, ``length``
        with ``length``, or ``chunked``: of unknown length). The downstream may set
        ``exchange.close_after`` when its protocol can only end the body by closing."""

    def send_body(self, data: bytes) -> None: ...

    def send_end(self, trailers: Headers | None) -> None:
        """The response's body is complete, with the app's trailers if it sent any."""

    def send_reply(
        self, exchange: Exchange, status: int, body: bytes, headers: HeaderPairs = ()
    ) -> None:
        """A whole response of Pillion's own (text/plain), or a route's direct one."""

    def send_switch(self, headers: Headers, upgrade: bytes) -> None:
        """The app switched to ``upgrade``: tell the client; a tunnel follows."""

    def send_tunnel(self, data: bytes) -> None:
        """Bytes from the app once the tunnel is open, as they are."""

    def cork(self) -> None:
        """Collect writes until ``uncork`` (one syscall for a head and its body)."""

    def uncork(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def exchange_done(self, exchange: Exchange) -> None:
        """The exchange is over (answered, or aborted: ``aborted``)."""

    def tunnel_opened(self, exchange: Exchange) -> None:
        """The app switched protocols: what the client sends now goes to
        ``exchange.on_client_bytes``, from the bytes held since the request."""


class Observer(Protocol):
    """Counts and logs what a listener served (``observe.ExchangeObserver``)."""

    def finished(self, exchange: Exchange) -> None:
        """A finished exchange."""

    def rejected(self, peer: Peer, status: int, flag: str) -> None:
        """A request refused before it had an exchange (400, 408, 431...)."""


class ConnectionHost(Protocol):
    """What a client connection (HTTP/1.1 or HTTP/2) needs of the listener that
    accepted it."""

    loop: asyncio.AbstractEventLoop
    draining: bool
    parser_limits: ParserLimits
    header_timeout: float
    idle_timeout: float
    exchange_settings: ExchangeSettings
    http2: Http2Settings | None  # None: the listener does not speak HTTP/2

    @property
    def observer(self) -> Observer:
        """Counts and logs what the listener served."""

    def connection_opened(self, connection: ListeningConnection) -> bool:
        """Count it in; False when the listener is at ``max_connections``."""

    def connection_closed(self, connection: ListeningConnection) -> None: ...

    def take_over_http2(
        self,
        connection: ListeningConnection,
        peer: Peer,
        transport: asyncio.Transport,
        data: bytes,
    ) -> None:
        """A cleartext connection began with the HTTP/2 preface: it is HTTP/2 from
        here on (``data``: what was read, the preface included)."""


class Http2Settings:
    """A listener's HTTP/2 limits (what it advertises, and what it tolerates)."""

    __slots__ = ("connection_window", "max_concurrent_streams", "only", "stream_window")

    def __init__(
        self,
        *,
        max_concurrent_streams: int = 100,
        stream_window: int = 1 << 20,
        connection_window: int = 16 << 20,
        only: bool = False,
    ) -> None:
        self.max_concurrent_streams = max_concurrent_streams
        self.stream_window = stream_window  # SETTINGS_INITIAL_WINDOW_SIZE
        self.connection_window = connection_window
        self.only = only  # HTTP/1.1 is off: every connection is HTTP/2


class ExchangeSettings:
    """What every exchange of a listener shares: handed in, never looked up."""

    __slots__ = ("deadlines", "gate", "identity_header", "loop", "propagation", "scheme")

    def __init__(
        self,
        *,
        gate: Gate,
        loop: asyncio.AbstractEventLoop,
        scheme: bytes = b"http",
        identity_header: bytes = IDENTITY_HEADER,
        propagation: Propagation | None = None,
    ) -> None:
        self.gate = gate
        self.loop = loop
        self.deadlines = Deadlines(loop)  # the request timeouts of the listener's exchanges
        self.scheme = scheme  # for X-Forwarded-Proto
        self.identity_header = identity_header  # where the client's identity is sent
        self.propagation = propagation  # with tracing: how the request's span travels on


class Exchange(Retries):
    __slots__ = (
        "aborted",
        "auth_headers",
        "bytes_in",
        "bytes_out",
        "close_after",
        "discarding",
        "down",
        "forwarded",
        "grpc",
        "grpc_message",
        "grpc_status",
        "jwt_waited",
        "out_head",
        "request_complete",
        "retried",
        "set_cookies",
        "settings",
        "started_at",
        "status",
        "timer",
        "trailers",
        "tunnel",
        "upstream",
        "upstream_at",
        "upstream_seconds",
        "user",
    )

    def __init__(
        self, down: Downstream, request: RequestHead, now: float, settings: ExchangeSettings
    ) -> None:
        super().__init__()
        self.down = down
        self.head = request
        self.started_at = now
        self.settings = settings
        self.loop = settings.loop
        self.upstream: UpstreamChannel | None = None
        self.out_head: bytes | Headers = b""  # the head the app is sent, for its protocol
        self.pending: list[bytes] = []  # request body read before the upstream was ready
        self.pending_size = 0
        self.request_complete = False
        self.response_started = False
        self.done = False
        self.retried = False
        self.status = 0
        self.flags = flags.NONE
        self.bytes_in = 0
        self.bytes_out = 0
        self.upstream_at = 0.0
        self.upstream_seconds = -1.0
        self.timer: Deadline | None = None
        self.forwarded: Forwarded | None = None
        self.target: Target | None = None
        self.close_after = not request.keep_alive
        self.aborted = False  # the response broke off: the client must see it incomplete
        self.trailers: Headers | None = None  # the response's, from the app
        self.grpc = False  # a gRPC call: answered the gRPC way, its status counted
        self.grpc_status: bytes | None = None  # from the trailers or a trailers-only head
        self.grpc_message: bytes | None = None
        self.upgrade: bytes | None = None  # the Upgrade forwarded (admitted)
        self.tunnel = False
        self.discarding = False  # reading a retried response to its end, dropping it
        self.jwt_waited = False  # a key fetch for its token's kid was waited for once
        self.auth_headers: tuple[tuple[bytes, bytes], ...] = ()  # claims for the app
        self.set_cookies: tuple[tuple[bytes, bytes], ...] = ()  # a refreshed login session
        self.user: bytes | None = None  # the logged-in user (access log)

    # -- the request, from the downstream --

    def start(self) -> None:
        """Become the active exchange of the connection: admit, get an upstream, send."""
        head = self.head
        if head.method == b"POST" and not self.jwt_waited:
            self.grpc = is_grpc(_field(head, b"content-type"))
        decision = self.settings.gate.decide(head, self.down, waited=self.jwt_waited)
        if not isinstance(decision, Admitted):
            if isinstance(decision, Pending):
                self.jwt_waited = True
                decision.future.add_done_callback(self._jwks_fetched)
                return
            target = decision.target
            if target is not None:  # refused on its route: counted as the route's
                self.target = target
                if target.tracked:
                    target.begin()
            self.flags = decision.flag
            self._local_reply(decision.status, decision.message, decision.headers)
            return
        target = decision.target
        self.target = target
        if target.tracked:
            target.begin()  # counted in flight from here to ``finished``
        self.auth_headers = decision.headers
        self.set_cookies = decision.reply_headers
        self.user = decision.user
        if decision.upgrade is not None:
            self.upgrade = decision.upgrade
            self.close_after = True  # the connection is the tunnel's, or ends here
        edits = target.edits
        if edits.direct is not None:
            self.flags = target.flag
            self._direct(*edits.direct)
            return
        pool = target.pool
        assert pool is not None
        timeout = target.request_timeout  # 0: none (long-lived streams)
        if self.grpc:
            deadline = parse_timeout(_field(head, b"grpc-timeout"))
            if deadline is not None:  # the client's deadline, capped by the route's
                timeout = min(timeout, deadline) if timeout else deadline
                self.auth_headers += ((b"grpc-timeout", format_timeout(timeout)),)
        self.out_head, self.forwarded = self._forward_head(target, pool.http2)
        self._arm_retries(target, grpc=self.grpc, refusable=pool.protocol != "http1")
        if timeout:
            self.timer = self.settings.deadlines.add(timeout, self._on_timeout)
        if self.head.expect_continue and not self.request_complete:
            self.down.send_continue()
        pool.acquire(self)

    def _jwks_fetched(self, _: object) -> None:
        if not self.done:
            self.start()

    def _forward_head(self, target: Target, http2: bool) -> tuple[bytes | Headers, Forwarded]:
        """The head the app receives: the route's edits, the gate's headers; as
        HTTP/2 fields when the app speaks HTTP/2."""
        edits = target.edits
        settings = self.settings
        down = self.down
        strip = settings.gate.strip
        if edits is NO_EDITS and not strip and not self.auth_headers and not http2:
            return request_head_for_upstream(  # the common case: nothing to edit
                self.head,
                down.client_ip,
                settings.scheme,
                target.host,
                identity=down.identity,
                identity_header=settings.identity_header,
                upgrade=self.upgrade,
                propagation=settings.propagation,
            )
        path = edits.path(self.head.target)
        remove = edits.remove | strip if strip else edits.remove
        set_headers = (
            edits.set_headers + self.auth_headers if self.auth_headers else edits.set_headers
        )
        if http2:
            pool = target.pool
            assert pool is not None
            return request_fields_for_upstream(
                self.head,
                down.client_ip,
                settings.scheme,
                target.host,
                scheme=b"https" if pool.tls is not None else b"http",
                path=path,
                remove=remove,
                set_headers=set_headers,
                add_headers=edits.add_headers,
                identity=down.identity,
                identity_header=settings.identity_header,
                grpc=self.grpc,
                propagation=settings.propagation,
            )
        return request_head_for_upstream(
            self.head,
            down.client_ip,
            settings.scheme,
            target.host,
            path=path,
            remove=remove,
            set_headers=set_headers,
            add_headers=edits.add_headers,
            identity=down.identity,
            identity_header=settings.identity_header,
            upgrade=self.upgrade,
            propagation=settings.propagation,
        )

    def on_body(self, data: bytes) -> None:
        if self.done:
            return  # answered already (e.g. 503); the rest of the body is dropped
        self.bytes_in += len(data)
        self._send(data)

    def on_request_complete(self) -> None:
        self.request_complete = True
        if not self.done and self.upstream is not None:
            self.upstream.end_request()

    def fail_request(self, status: int, reason: str) -> None:
        """The rest of the request was bad (413, malformed chunk): stop, tell, close."""
        self.flags = flags.DPE
        self.close_after = True
        if self.response_started:
            self._abort()
        else:
            self._local_reply(status, reason)

    def on_downstream_lost(self) -> bool:
        """The client is gone: stop. True when the exchange was still going (it
        is over now, and still to be counted)."""
        if self.done:
            return False
        self.done = True
        if self.flags == flags.NONE and not self.tunnel:  # a tunnel ends when a side closes
            self.flags = flags.DC
        self._cancel_timer()
        self._drop_upstream()
        return True

    def _send(self, data: bytes) -> None:
        if self.replay is not None:
            self._keep(data)
        upstream = self.upstream
        if upstream is not None:
            upstream.write(data)
            return
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > _BUFFER_LIMIT:
            self.down.pause_reading()

    # -- the upstream connection, from the pool --

    @property
    def wants_upstream(self) -> bool:
        return not self.done and self.upstream is None and self.retry_timer is None

    def on_upstream(self, channel: UpstreamChannel) -> None:
        self.upstream = channel
        self.upstream_at = perf_counter()
        if channel.http2 is isinstance(self.out_head, bytes):
            # the app's protocol was learnt on connecting (ALPN): the head in it
            target = self.target
            assert target is not None
            self.out_head, self.forwarded = self._forward_head(target, channel.http2)
        head = self.head
        # a request without a body is complete with its head, even if its end is
        # still to be read (HTTP/2: END_STREAM on the HEADERS, not an empty DATA)
        complete = self.request_complete or head.body == "none"
        channel.send(self.out_head, self.pending, complete, head.body == "chunked")
        if self.pending_size > _BUFFER_LIMIT:
            self.down.resume_reading()
        self.pending = []
        self.pending_size = 0

    def on_upstream_failure(self, status: int, flag: str, message: str) -> None:
        if self.done:
            return
        # nothing was sent: any request may go again (``pending`` still holds it)
        if flag == flags.UF and self._may_retry("connect_failure", status, flag, sent=False):
            return
        self.flags = flag
        self._local_reply(status, message)

    def on_upstream_lost(self, error: ResponseError) -> None:
        connection, self.upstream = self.upstream, None
        if self.done:
            return
        if self.discarding:  # the retried response broke off: retry all the same
            self.discarding = False
            self._schedule_retry()
            return
        incomplete = isinstance(error, ResponseIncomplete)
        refused = isinstance(error, UpstreamRefused)
        if (
            not self.response_started
            and incomplete
            and connection is not None
            and (connection.requests > 1 or refused)
            and (
                (self.head.body == "none" and self.request_complete)
                or (refused and self.replay is not None)
            )
            and not self.retried
        ):
            # A pooled connection the app closed as we sent, or a stream it refused
            # (HTTP/2 GOAWAY or REFUSED_STREAM): it never processed the request.
            self.retried = True
            target = self.target
            assert target is not None
            assert target.pool is not None
            self.pending = list(self.replay) if self.replay is not None else []
            self.pending_size = self.replay_size if self.replay is not None else 0
            target.pool.acquire(self, fresh=True)
            return
        flag = flags.UC if incomplete else flags.UPE
        if not self.response_started and self._may_retry("reset", 502, flag, sent=True):
            return
        self.flags = flag
        if self.response_started:
            self._abort()
        else:
            self._local_reply(502, error.reason)

    def pause_downstream(self) -> None:
        self.down.pause_reading()

    def cork(self) -> None:
        self.down.cork()

    def uncork(self) -> None:
        self.down.uncork()

    def resume_downstream(self) -> None:
        self.down.resume_reading()

    # -- the response, from the upstream's parser --

    def on_response(self, response: ResponseHead) -> None:
        if self.done:
            return
        if response.status == 101:
            self._switch_protocols(response)
            return
        if response.status < 200:
            return  # interim responses end here: Pillion answered Expect itself
        target = self.target
        assert target is not None
        grpc_status = status_in(response.headers) if self.grpc else None
        if grpc_status is not None:  # a trailers-only response: its status is here
            self.grpc_status = grpc_status
            self.grpc_message = _field(response.headers, b"grpc-message") or None
        retry = target.retry
        if retry is not None and (
            (
                response.status in retry.statuses
                and self._may_retry("status", response.status, flags.NONE, sent=True, now=False)
            )
            or (
                grpc_status in retry.grpc_codes
                and response.body == "none"
                and self._may_retry("grpc", response.status, flags.NONE, sent=True, now=False)
            )
        ):
            self.discarding = True
            if self.head.method == b"HEAD":  # llhttp would wait for the announced body
                self._drop_upstream()
                self.discarding = False
                self._schedule_retry()
            return
        self._cancel_try_timer()
        self.response_started = True
        self.status = response.status
        self.upstream_seconds = perf_counter() - self.upstream_at
        down = self.down
        if not self.request_complete or down.draining:
            self.close_after = True
        edits = target.edits
        if edits.edits_response or self.set_cookies:
            headers = response_headers_for_client(
                response,
                remove=edits.remove_response,
                set_headers=edits.set_response,
                add_headers=edits.add_response + self.set_cookies,
            )
        else:
            headers = response_headers_for_client(response)
        down.send_head(self, response.status, headers, response.body, response.content_length)
        if self.head.method == b"HEAD":
            # llhttp cannot be told a response answers HEAD: it would wait for the
            # announced body, so the connection is not reused.
            self._finish(reuse=False)

    def on_response_body(self, data: bytes) -> None:
        if self.done or self.discarding:
            return
        self.bytes_out += len(data)
        self.down.send_body(data)

    def on_response_trailers(self, trailers: Headers) -> None:
        if not self.done and not self.discarding:
            self.trailers = trailers
            if self.grpc:
                self.grpc_status = status_in(trailers)
                self.grpc_message = _field(trailers, b"grpc-message") or None

    def on_response_end(self) -> None:
        if self.done:
            return
        if self.discarding:
            self.discarding = False
            connection, self.upstream = self.upstream, None
            if connection is not None:
                if self.request_complete:
                    connection.release()
                else:
                    connection.user = None
                    connection.close()
            self._schedule_retry()
            return
        self.down.send_end(self.trailers)
        self._finish(reuse=self.request_complete)

    # -- tunnels (after a 101) --

    def _switch_protocols(self, response: ResponseHead) -> None:
        """A 101: a tunnel if it switches to a protocol the gate let through."""
        upgrade = b""
        for name, value in response.headers:
            if name.lower() == b"upgrade":
                upgrade = value
        offered = self.upgrade
        if (
            offered is None
            or not upgrade
            or upgrade.split(b"/", 1)[0].strip().lower()
            not in {p.split(b"/", 1)[0].strip().lower() for p in offered.split(b",")}
        ):
            # never a tunnel the gate did not admit (an app answering 101 to a plain request)
            self.flags = flags.UPE
            self._local_reply(502, "upstream switched protocols without an admitted upgrade")
            return
        self.response_started = True
        self.tunnel = True
        self.close_after = True
        self.status = 101
        self.upstream_seconds = perf_counter() - self.upstream_at
        self._cancel_timer()  # a tunnel lives as long as its peers keep it
        self.down.send_switch(response_headers_for_client(response), upgrade)
        self.down.tunnel_opened(self)

    def on_client_bytes(self, data: bytes) -> None:
        """Bytes from the client once the tunnel is open: sent on as they are."""
        upstream = self.upstream
        if self.done or not data or upstream is None:
            return
        self.bytes_in += len(data)
        upstream.write(data)

    def on_upstream_bytes(self, data: bytes) -> None:
        if not self.done and data:
            self.bytes_out += len(data)
            self.down.send_tunnel(data)

    def end_tunnel(self) -> None:
        """A side of the tunnel closed: close the other (after what it was sent)."""
        if self.done:
            return
        self.done = True
        connection, self.upstream = self.upstream, None
        if connection is not None:
            connection.user = None
            connection.close()
        self.down.exchange_done(self)

    # -- endings --

    def _on_timeout(self) -> None:
        self.timer = None
        if self.done:
            return
        self.flags = flags.UT
        if self.response_started:
            self._abort()
        else:
            self._local_reply(504, "upstream request timeout")

    def _finish(self, *, reuse: bool) -> None:
        self.done = True
        self._cancel_timer()
        connection, self.upstream = self.upstream, None
        if connection is not None:
            if reuse:
                connection.release()
            else:
                connection.user = None
                connection.close()
        self.down.exchange_done(self)

    def _direct(self, status: int, body: bytes) -> None:
        """A route's configured answer: nothing is forwarded."""
        self.done = True
        self.status = status
        self._cancel_timer()
        if not self.request_complete and self.head.body != "none":
            self.close_after = True  # the rest of the body would be read as a request
        self.down.send_reply(self, status, body)
        self.down.exchange_done(self)

    def _local_reply(self, status: int, message: str, headers: HeaderPairs = ()) -> None:
        self.done = True
        self._cancel_timer()
        self._drop_upstream()
        if not self.request_complete and self.head.body != "none":
            self.close_after = True  # the rest of the body would be read as a request
        if self.grpc:
            # a gRPC client reads only gRPC statuses: a trailers-only error
            code = code_for_status(status)
            self.status = 200
            self.grpc_status = b"%d" % code
            self.grpc_message = message.encode()
            self.down.send_reply(self, 200, b"", (*reply_headers(code, message), *headers))
        else:
            self.status = status
            self.down.send_reply(self, status, f"{message}\n".encode(), headers)
        self.down.exchange_done(self)

    def _abort(self) -> None:
        """The response had begun and cannot be completed: close the client connection
        (or reset the client's stream)."""
        self.done = True
        self.aborted = True
        self.close_after = True
        self._cancel_timer()
        self._drop_upstream()
        self.down.exchange_done(self)

    def _drop_upstream(self) -> None:
        connection, self.upstream = self.upstream, None
        if connection is not None:
            connection.user = None
            connection.abort()
        elif (
            (target := self.target) is not None and target.pool is not None and target.pool.waiting
        ):
            target.pool.cancel(self)  # it was waiting for a connection: no longer

    def _acquire(self, target: Target) -> None:
        assert target.pool is not None
        target.pool.acquire(self)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._cancel_retry_timers()


def _field(fields: HeaderPairs | RequestHead, lower: bytes) -> bytes:
    """The first value of a field (``lower``: its lower-case name), else empty."""
    pairs = fields.headers if isinstance(fields, RequestHead) else fields
    for name, value in pairs:
        if name == lower or (len(name) == len(lower) and name.lower() == lower):
            return value
    return b""
