"""The retry half of an exchange: whether a failed try goes again, and the next try.

With a retry policy (route or cluster), a failed try is sent again, to another
endpoint when the cluster has one, after a jittered backoff: after a connect
failure always (nothing was sent); after a reset, a per-try timeout or a listed
status only when the method allows it and the request was small enough to keep
(``replay``). A retried status's response is read and dropped, so its connection
is reused. Each retry needs room in the upstream's retry budget.

``Retries`` is the base of ``Exchange``: it holds the retry state and the steps
between tries, and asks the exchange (``_drop_upstream``, ``_local_reply``,
``_on_timeout``, ``_acquire``) for the endings it shares with a single try.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Final

from pillion.proxy import flags

if TYPE_CHECKING:
    from pillion.http.headers import HeaderPairs
    from pillion.http.request import RequestHead
    from pillion.proxy.cluster import Target

__all__ = ["Retries"]

_KEPT_FOR_REFUSAL: Final = 64 * 1024  # body kept to send again a request the app refused (HTTP/2)


class Retries:
    __slots__ = (
        "attempts",
        "done",
        "flags",
        "head",
        "loop",
        "pending",
        "pending_size",
        "replay",
        "replay_for",
        "replay_limit",
        "replay_size",
        "resend",
        "response_started",
        "retry_log",
        "retry_timer",
        "retrying",
        "target",
        "try_flag",
        "try_status",
        "try_timer",
        "upgrade",
    )

    # what the exchange has, and what the retry steps use of it
    head: RequestHead
    target: Target | None
    done: bool
    response_started: bool
    upgrade: bytes | None
    pending: list[bytes]
    pending_size: int
    flags: str
    loop: asyncio.AbstractEventLoop

    def __init__(self) -> None:
        self.attempts = 0  # retries made
        # each retry's wall-clock time, reason, and the failed try's status and flag
        self.retry_log: list[tuple[float, str, int, str]] | None = None
        self.replay: list[bytes] | None = None  # what was sent, kept for a retry
        self.replay_size = 0
        self.replay_limit = 0  # the most that is kept
        # "any": kept for every retry; "grpc": only for a listed gRPC status (or a
        # stream the app refused), as the method alone would not allow it
        self.replay_for = "any"
        self.retrying = False  # counted in the budget's retries in flight
        self.retry_timer: asyncio.TimerHandle | None = None
        self.try_timer: asyncio.TimerHandle | None = None
        self.resend = False  # the next try sends ``replay`` (the last one was sent)
        self.try_status = 0  # how the last try ended, reported when the next begins
        self.try_flag = flags.NONE

    # -- what the exchange provides --

    def _drop_upstream(self) -> None:
        raise NotImplementedError

    def _local_reply(self, status: int, message: str, headers: HeaderPairs = ()) -> None:
        raise NotImplementedError

    def _on_timeout(self) -> None:
        raise NotImplementedError

    def _acquire(self, target: Target) -> None:
        """Ask ``target``'s pool for a connection for the next try."""
        raise NotImplementedError

    # -- the first try --

    def _arm_retries(self, target: Target, *, grpc: bool, refusable: bool) -> None:
        """Before the first try: keep what is sent if it may be sent again, and
        start the per-try timer. ``grpc``: a gRPC call; ``refusable``: the app may
        refuse the request unprocessed (HTTP/2), and then it goes again."""
        retry = target.retry
        head = self.head
        if retry is not None and retry.replayable(
            head.method, head.body, head.content_length, self.upgrade is not None
        ):
            self.replay_for = "any"
        elif (refusable or (grpc and retry is not None and retry.grpc_codes)) and (
            head.body != "length" or head.content_length <= _KEPT_FOR_REFUSAL
        ):
            self.replay_for = "grpc"
        else:
            self.replay_for = ""
        if self.replay_for:
            self.replay = list(self.pending)
            self.replay_size = self.pending_size
            self.replay_limit = retry.max_body_size if retry is not None else _KEPT_FOR_REFUSAL
        if retry is None:
            return
        if retry.per_try_timeout is not None:
            self.try_timer = self.loop.call_later(retry.per_try_timeout, self._on_try_timeout)

    def _keep(self, data: bytes) -> None:
        assert self.replay is not None
        self.replay_size += len(data)
        if self.replay_size > self.replay_limit:
            self.replay = None  # too big to keep: this request is not retried once sent
        else:
            self.replay.append(data)

    # -- between tries --

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
        if sent and (
            self.replay is None
            or self.upgrade is not None
            or (self.replay_for != "any" and reason != "grpc")
        ):
            return False
        assert target.retries is not None
        if not target.retries.allow(self.loop.time(), reason, already_retrying=self.retrying):
            return False
        self.retrying = True
        self.attempts += 1
        entry = (time.time(), reason, status, flag)
        if self.retry_log is None:
            self.retry_log = [entry]
        else:
            self.retry_log.append(entry)
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
        self.retry_timer = self.loop.call_later(delay, self._retry)

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
            self.try_timer = self.loop.call_later(
                previous.retry.per_try_timeout, self._on_try_timeout
            )
        self._acquire(target)

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

    def _cancel_retry_timers(self) -> None:
        if self.try_timer is not None:
            self._cancel_try_timer()
        if self.retry_timer is not None:
            self.retry_timer.cancel()
            self.retry_timer = None
