"""One request and its response, from the client's head to the app and back.

Driven entirely by callbacks: the downstream connection feeds the request
(``start``, ``on_body``, ``on_request_complete``), the pool hands over an
upstream connection (``on_upstream``), and the upstream's response parser feeds
the response (``on_response``, ``on_response_body``, ``on_response_end``). No
task per request; one timer (the request timeout).

Failures before the response began become Pillion's own short response (503
``UF``, 504 ``UT``, 502 ``UC``/``UPE``); after, the client connection is closed
so the truncation is visible. A request on a reused keep-alive connection that
the app closed before answering is retried once on a new connection when it had
no body (the app never saw it).

With a retry policy (route or cluster), a failed try is sent again, to another
endpoint when the cluster has one, after a jittered backoff: after a connect
failure always (nothing was sent); after a reset, a per-try timeout or a listed
status only when the method allows it and the request was small enough to keep
(``replay``). A retried status's response is read and dropped, so its connection
is reused. Each retry needs room in the upstream's retry budget.

An Upgrade request (WebSocket and others) is forwarded with its ``Upgrade``; if
the app answers 101 the exchange becomes a tunnel: bytes are copied both ways
until either side closes, then it is counted (code 101, bytes in and out). Bytes
the client sends before the 101 are held (bounded) and sent on after it.
"""

from __future__ import annotations

import asyncio
import math
import time
from time import perf_counter
from typing import TYPE_CHECKING

from pillion.http.errors import ResponseError, ResponseIncomplete
from pillion.http.request import RequestHead
from pillion.http.response import ResponseHead
from pillion.http.serialize import (
    LAST_CHUNK,
    chunk,
    direct_response,
    head,
    local_response,
    status_line,
)
from pillion.proxy import flags
from pillion.proxy.cluster import NO_EDITS
from pillion.proxy.forwarding import (
    Forwarded,
    request_head_for_upstream,
    response_headers_for_client,
)

if TYPE_CHECKING:
    from pillion.proxy.cluster import Target
    from pillion.proxy.downstream import DownstreamConnection
    from pillion.proxy.ratelimit import RateLimit
    from pillion.proxy.upstream import UpstreamConnection

__all__ = ["Exchange"]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BUFFER_LIMIT = 64 * 1024  # request body held while the upstream connection is made


class Exchange:
    __slots__ = (
        "attempts",
        "auth_headers",
        "bytes_in",
        "bytes_out",
        "chunked_out",
        "close_after",
        "discarding",
        "done",
        "down",
        "flags",
        "forwarded",
        "head",
        "jwt_checked",
        "jwt_waited",
        "key_checked",
        "key_present",
        "pending",
        "pending_size",
        "replay",
        "replay_size",
        "request_complete",
        "resend",
        "response_started",
        "retried",
        "retry_timer",
        "retrying",
        "started_at",
        "status",
        "target",
        "timer",
        "token_present",
        "try_flag",
        "try_status",
        "try_timer",
        "tunnel",
        "tunnel_early",
        "upstream",
        "upstream_at",
        "upstream_seconds",
    )

    def __init__(self, down: DownstreamConnection, request: RequestHead, now: float) -> None:
        self.down = down
        self.head = request
        self.started_at = now
        self.upstream: UpstreamConnection | None = None
        self.pending: list[bytes] = []
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
        self.timer: asyncio.TimerHandle | None = None
        self.forwarded: Forwarded | None = None
        self.target: Target | None = None
        self.chunked_out = False
        self.close_after = not request.keep_alive or request.upgrade
        self.tunnel = False
        self.tunnel_early: list[bytes] = []
        self.attempts = 0  # retries made
        self.replay: list[bytes] | None = None  # what was sent, kept for a retry
        self.replay_size = 0
        self.discarding = False  # reading a retried response to its end, dropping it
        self.retrying = False  # counted in the budget's retries in flight
        self.retry_timer: asyncio.TimerHandle | None = None
        self.try_timer: asyncio.TimerHandle | None = None
        self.resend = False  # the next try sends ``replay`` (the last one was sent)
        self.try_status = 0  # how the last try ended, reported when the next begins
        self.try_flag = flags.NONE
        self.jwt_checked = False
        self.jwt_waited = False  # a key fetch for its token's kid was waited for once
        self.token_present = False
        self.key_checked = False
        self.key_present = False
        self.auth_headers: tuple[tuple[bytes, bytes], ...] = ()  # claims for the app

    # -- the request, from the downstream connection --

    def start(self) -> None:
        """Become the active exchange of the connection: get an upstream, send."""
        down = self.down
        listener = down.listener
        jwt = listener.jwt
        if jwt is not None and not self.jwt_checked:
            outcome = jwt.check(self.head.headers, time.time(), waited=self.jwt_waited)
            if outcome.pending is not None:  # its key id is new: wait for the key fetch
                self.jwt_waited = True
                outcome.pending.add_done_callback(self._jwks_fetched)
                return
            if outcome.error:
                self._unauthenticated(outcome.error)
                return
            self.jwt_checked = True
            self.token_present = outcome.present
            self.auth_headers += outcome.headers
        api_keys = listener.api_keys
        if api_keys is not None and not self.key_checked:
            self.key_checked = True
            self.key_present, caller = api_keys.check(self.head)
            if self.key_present and caller is None:
                api_keys.invalid.inc()
                self._unauthorized_key()
                return
            if caller:
                self.auth_headers += ((api_keys.name_header, caller.encode()),)
        if listener.authorization is not None and not listener.authorization.allows(down.identity):
            self._deny()
            return
        if listener.rate_limit is not None and self._rate_limited(listener.rate_limit):
            return
        target = listener.fixed_target or listener.route(self.head, down)
        if target is None:
            self.flags = flags.NR
            self._local_reply(404, "no route for this request")
            return
        self.target = target
        if target.tracked:
            target.begin()  # counted in flight from here to ``finished``
        route = target.route
        if jwt is not None and not self.token_present and jwt.requires(route.jwt_required):
            self._unauthenticated("")
            return
        if (
            api_keys is not None
            and not self.key_present
            and api_keys.requires(route.api_key_required)
        ):
            api_keys.missing.inc()
            self._unauthorized_key()
            return
        if route.authorization is not None and not route.authorization.allows(down.identity):
            self._deny()
            return
        if route.limit is not None and self._rate_limited(route.limit):
            return
        edits = target.edits
        if edits is NO_EDITS and jwt is None and api_keys is None:
            request_head, self.forwarded = request_head_for_upstream(
                self.head,
                down.client_ip,
                listener.scheme,
                target.host,
                identity=down.identity,
                identity_header=listener.identity_header,
            )
        elif edits.direct is not None:
            self.flags = target.flag
            self._direct(*edits.direct)
            return
        else:
            request_head, self.forwarded = self._edited_head(target)
        pool = target.pool
        assert pool is not None
        self.pending.insert(0, request_head)
        retry = target.retry
        if retry is not None:
            head = self.head
            if retry.replayable(head.method, head.body, head.content_length, head.upgrade):
                self.replay = list(self.pending)
                self.replay_size = self.pending_size
            if retry.per_try_timeout is not None:
                self.try_timer = listener.loop.call_later(
                    retry.per_try_timeout, self._on_try_timeout
                )
        self.timer = listener.loop.call_later(target.request_timeout, self._on_timeout)
        if self.head.expect_continue and not self.request_complete:
            down.write(CONTINUE)
        pool.acquire(self)

    def _rate_limited(self, limit: RateLimit) -> bool:
        """Take a token; without one, answer 429 (flag RL) and say so."""
        down = self.down
        wait = limit.wait(
            down.client_ip, self.head.headers, down.listener.loop.time(), down.identity
        )
        if not wait:
            return False
        self.flags = flags.RL
        self._local_reply(429, "rate limited", extra=b"retry-after: %d\r\n" % math.ceil(wait))
        return True

    def _jwks_fetched(self, _: object) -> None:
        if not self.done:
            self.start()

    def _unauthenticated(self, error: str) -> None:
        """No token where one is needed (``error`` empty), or a bad one: 401."""
        jwt = self.down.listener.jwt
        assert jwt is not None
        jwt.rejected(error.replace(" ", "_") if error else "missing")
        self.flags = flags.UAEX
        if error:
            challenge = b'www-authenticate: Bearer realm="pillion", error="invalid_token", ' \
                        b'error_description="%s"\r\n' % error.encode()  # fmt: skip
        else:
            challenge = b'www-authenticate: Bearer realm="pillion"\r\n'
        self._local_reply(401, error or "a bearer token is required", extra=challenge)

    def _unauthorized_key(self) -> None:
        self.flags = flags.UAEX
        self._local_reply(401, "a valid API key is required")

    def _deny(self) -> None:
        """The caller's identity is not allowed here: 403, flag UAEX."""
        self.flags = flags.UAEX
        self._local_reply(403, "caller not allowed")

    def _edited_head(self, target: Target) -> tuple[bytes, Forwarded]:
        edits = target.edits
        down = self.down
        remove, set_headers = edits.remove, edits.set_headers
        listener = down.listener
        if listener.jwt is not None:  # claims replace what the client sent in their headers
            remove = remove | listener.jwt.forwarded_names
        if listener.api_keys is not None:  # the key itself never travels on
            remove = remove | {listener.api_keys.header, listener.api_keys.name_header}
        if self.auth_headers:
            set_headers = set_headers + self.auth_headers
        return request_head_for_upstream(
            self.head,
            down.client_ip,
            down.listener.scheme,
            target.host,
            path=edits.path(self.head.target),
            remove=remove,
            set_headers=set_headers,
            add_headers=edits.add_headers,
            identity=down.identity,
            identity_header=down.listener.identity_header,
        )

    def on_body(self, data: bytes) -> None:
        if self.done:
            return  # answered already (e.g. 503); the rest of the body is dropped
        self.bytes_in += len(data)
        self._send(chunk(data) if self.head.body == "chunked" else data)

    def on_request_complete(self) -> None:
        self.request_complete = True
        if self.head.body == "chunked" and not self.done:
            self._send(LAST_CHUNK)

    def fail_request(self, status: int, reason: str) -> None:
        """The rest of the request was bad (413, malformed chunk): stop, tell, close."""
        self.flags = flags.DPE
        self.close_after = True
        if self.response_started:
            self._abort()
        else:
            self._local_reply(status, reason)

    def on_downstream_lost(self) -> None:
        if self.done:
            return
        self.done = True
        if self.flags == flags.NONE and not self.tunnel:  # a tunnel ends when a side closes
            self.flags = flags.DC
        self._cancel_timer()
        self._drop_upstream()
        self.down.listener.observe(self)

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

    def _keep(self, data: bytes) -> None:
        assert self.replay is not None
        assert self.target is not None
        assert self.target.retry is not None
        self.replay_size += len(data)
        if self.replay_size > self.target.retry.max_body_size:
            self.replay = None  # too big to keep: this request is not retried once sent
        else:
            self.replay.append(data)

    # -- the upstream connection, from the pool --

    @property
    def wants_upstream(self) -> bool:
        return not self.done and self.upstream is None and self.retry_timer is None

    def on_upstream(self, connection: UpstreamConnection) -> None:
        self.upstream = connection
        self.upstream_at = perf_counter()
        pending = self.pending
        connection.write(pending[0] if len(pending) == 1 else b"".join(pending))
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
        if (
            not self.response_started
            and incomplete
            and connection is not None
            and connection.requests > 1
            and self.head.body == "none"
            and self.request_complete
            and not self.retried
        ):
            # A pooled connection the app closed as we sent: it never saw the request.
            self.retried = True
            target = self.target
            assert target is not None
            assert target.pool is not None
            self.pending = [self._edited_head(target)[0]]
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
        if response.status == 101 and self.head.upgrade:
            self._open_tunnel(response)
            return
        if response.status < 200:
            return  # interim responses end here: Pillion answered Expect itself
        target = self.target
        assert target is not None
        if (
            target.retry is not None
            and response.status in target.retry.statuses
            and self._may_retry("status", response.status, flags.NONE, sent=True, now=False)
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
        is_head = self.head.method == b"HEAD"
        edits = target.edits
        if edits.edits_response:
            headers = response_headers_for_client(
                response,
                remove=edits.remove_response,
                set_headers=edits.set_response,
                add_headers=edits.add_response,
            )
        else:
            headers = response_headers_for_client(response)
        extra = b""
        if response.body == "length":
            extra = b"content-length: %d\r\n" % response.content_length
        elif is_head or response.body == "none":
            pass
        elif self.head.version == b"1.1":
            self.chunked_out = True
            extra = b"transfer-encoding: chunked\r\n"
        else:
            self.close_after = True  # an HTTP/1.0 client: the body ends when we close
        if self.close_after:
            extra += b"connection: close\r\n"
        down.write(head(status_line(response.status), headers, extra))
        if is_head:
            # llhttp cannot be told a response answers HEAD: it would wait for the
            # announced body, so the connection is not reused.
            self._finish(reuse=False)

    def on_response_body(self, data: bytes) -> None:
        if self.done or self.discarding:
            return
        self.bytes_out += len(data)
        self.down.write(chunk(data) if self.chunked_out else data)

    def on_response_end(self) -> None:
        if self.done:
            return
        if self.discarding:
            self.discarding = False
            connection, self.upstream = self.upstream, None
            if connection is not None:
                if self.request_complete:
                    connection.pool.release(connection)
                else:
                    connection.user = None
                    connection.close()
            self._schedule_retry()
            return
        if self.chunked_out:
            self.down.write(LAST_CHUNK)
        self._finish(reuse=self.request_complete)

    # -- tunnels (after a 101) --

    def _open_tunnel(self, response: ResponseHead) -> None:
        self.response_started = True
        self.tunnel = True
        self.close_after = True
        self.status = 101
        self.upstream_seconds = perf_counter() - self.upstream_at
        self._cancel_timer()  # a tunnel lives as long as its peers keep it
        self._cancel_try_timer()
        upgrade = b""
        for name, value in response.headers:
            if name.lower() == b"upgrade":
                upgrade = value
        extra = b"connection: upgrade\r\nupgrade: %s\r\n" % upgrade if upgrade else b""
        self.down.write(head(status_line(101), response_headers_for_client(response), extra))
        early, self.tunnel_early = self.tunnel_early, []
        for data in early:
            self.on_client_bytes(data)
        self.down.resume_reading()

    def on_client_bytes(self, data: bytes) -> None:
        """Bytes after an Upgrade request: held until the 101, then sent on."""
        if self.done or not data:
            return
        upstream = self.upstream
        if self.tunnel and upstream is not None:
            self.bytes_in += len(data)
            upstream.write(data)
            return
        self.tunnel_early.append(data)
        if sum(map(len, self.tunnel_early)) > _BUFFER_LIMIT:
            self.down.pause_reading()

    def on_upstream_bytes(self, data: bytes) -> None:
        if not self.done and data:
            self.bytes_out += len(data)
            self.down.write(data)

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

    # -- retries --

    def _may_retry(
        self, reason: str, status: int, flag: str, *, sent: bool, now: bool = True
    ) -> bool:
        """Whether this try's failure is retried: the policy, the tries left, the
        kept request and the budget allow it. If so the try is over (its endpoint
        told), and the retry is scheduled (``now``) or left to ``_schedule_retry``."""
        target = self.target
        if target is None or self.done:
            return False
        policy = target.retry
        if policy is None or self.attempts >= policy.max_retries:
            return False
        if sent and (self.replay is None or self.head.upgrade):
            return False
        assert target.retries is not None
        loop = self.down.listener.loop
        if not target.retries.allow(loop.time(), reason, already_retrying=self.retrying):
            return False
        self.retrying = True
        self.attempts += 1
        self._cancel_try_timer()
        self.resend = sent
        self.try_status = status
        self.try_flag = flag
        if now:
            self._schedule_retry()
        return True

    def _schedule_retry(self) -> None:
        """After the backoff, try again on another endpoint."""
        target = self.target
        assert target is not None
        assert target.retry is not None
        self._drop_upstream()
        delay = target.retry.backoff(self.attempts)
        self.retry_timer = self.down.listener.loop.call_later(delay, self._retry)

    def _retry(self) -> None:
        self.retry_timer = None
        if self.done:
            return
        previous = self.target
        assert previous is not None
        assert previous.retry is not None
        if self.resend:
            if self.replay is None:  # the body outgrew what may be kept meanwhile
                self.flags = self.try_flag
                self._local_reply(self.try_status, "upstream failed; request too big to retry")
                return
            # what was kept, and whatever of the body is still to come after it
            self.pending = list(self.replay)
            self.pending_size = self.replay_size
        previous.finished(self.try_status, self.try_flag)
        target = previous.again()
        if target.pool is None:  # the cluster is at a cap, or has no address now
            assert previous.retries is not None
            assert target.edits.direct is not None
            previous.retries.budget.retry_done()
            self.retrying = False
            self.target = target
            self.flags = target.flag
            self._local_reply(target.edits.direct[0], target.edits.direct[1].decode().strip())
            return
        if target is previous:
            target.begin()
        self.target = target
        if previous.retry.per_try_timeout is not None:
            self.try_timer = self.down.listener.loop.call_later(
                previous.retry.per_try_timeout, self._on_try_timeout
            )
        target.pool.acquire(self)

    def _on_try_timeout(self) -> None:
        self.try_timer = None
        if self.done or self.response_started:
            return
        if self._may_retry("per_try_timeout", 504, flags.UT, sent=True):
            return
        self._on_timeout()

    def _cancel_try_timer(self) -> None:
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None

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
                connection.pool.release(connection)
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
        self.down.write(direct_response(status, body, close=self.close_after))
        self.down.exchange_done(self)

    def _local_reply(self, status: int, message: str, extra: bytes = b"") -> None:
        self.done = True
        self.status = status
        self._cancel_timer()
        self._drop_upstream()
        if not self.request_complete and self.head.body != "none":
            self.close_after = True  # the rest of the body would be read as a request
        self.down.write(local_response(status, message, close=self.close_after, extra=extra))
        self.down.exchange_done(self)

    def _abort(self) -> None:
        """The response had begun and cannot be completed: close the client connection."""
        self.done = True
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

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.try_timer is not None:
            self._cancel_try_timer()
        if self.retry_timer is not None:
            self.retry_timer.cancel()
            self.retry_timer = None
