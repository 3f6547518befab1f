"""When a failed request may be tried again, and after how long. No I/O.

A retry budget keeps retries from amplifying an outage: a retry is allowed
while the retries in flight stay within ``ratio`` of the requests in flight, or
while fewer than ``min_per_second`` retries were started this second (so a quiet
service can still retry); never beyond ``max_active`` retries in flight.
Backoff is exponential with full jitter, capped.
"""

from __future__ import annotations

import random

from pillion.config.proxy import RetryBudgetConfig, RetryPolicyConfig
from pillion.http.grpc import CODE_NAMES

__all__ = ["IDEMPOTENT", "RetryBudget", "RetryPolicy", "backoff"]

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


class RetryPolicy:
    """A route's or cluster's retry policy, ready for the per-request checks."""

    __slots__ = (
        "backoff_base",
        "backoff_max",
        "grpc_codes",
        "max_body_size",
        "max_retries",
        "non_idempotent",
        "per_try_timeout",
        "statuses",
    )

    def __init__(self, config: RetryPolicyConfig) -> None:
        self.max_retries = config.max_retries
        self.statuses = frozenset(config.statuses)
        # the grpc-status values retried, as they come on the wire
        self.grpc_codes = frozenset(b"%d" % CODE_NAMES[name] for name in config.grpc_codes)
        self.per_try_timeout = config.per_try_timeout
        self.non_idempotent = config.non_idempotent
        self.max_body_size = config.max_body_size
        self.backoff_base = config.backoff_base
        self.backoff_max = config.backoff_max

    def replayable(self, method: bytes, body: str, content_length: int, upgrade: bool) -> bool:
        """Whether a request may be sent again after it was sent once: its method
        allows it and its body is small enough to keep (chunked: checked as it comes)."""
        if upgrade or not (self.non_idempotent or method in IDEMPOTENT):
            return False
        return body != "length" or content_length <= self.max_body_size

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        return backoff(attempt, self.backoff_base, self.backoff_max, rng)


class RetryBudget:
    """Requests and retries in flight to one upstream, and whether one more retry fits."""

    __slots__ = (
        "_window_retries",
        "_window_start",
        "active_requests",
        "active_retries",
        "max_active",
        "min_per_second",
        "ratio",
    )

    def __init__(self, ratio: float = 0.2, min_per_second: int = 10, max_active: int = 64) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.max_active = max_active
        self.active_requests = 0
        self.active_retries = 0
        self._window_start = float("-inf")
        self._window_retries = 0

    @classmethod
    def from_config(cls, config: RetryBudgetConfig, max_active: int = 64) -> RetryBudget:
        return cls(config.ratio, config.min_per_second, max_active)

    def may_retry(self, now: float, *, already_retrying: bool = False) -> bool:
        """Whether one more retry fits; if so it is counted as started. A request
        that is already a retry in flight does not count twice."""
        retries = self.active_retries if already_retrying else self.active_retries + 1
        if retries > self.max_active:
            return False
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._window_retries = 0
        within_ratio = retries <= self.ratio * self.active_requests
        within_floor = self._window_retries < self.min_per_second
        if not (within_ratio or within_floor):
            return False
        if not already_retrying:
            self.active_retries += 1
        self._window_retries += 1
        return True

    def retry_done(self) -> None:
        """A request that had been retried ended."""
        self.active_retries = max(0, self.active_retries - 1)


def backoff(attempt: int, base: float = 0.025, cap: float = 0.25,
            rng: random.Random | None = None) -> float:  # fmt: skip
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): full jitter."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(0.0, ceiling)
