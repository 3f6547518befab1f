"""When a failed request may be tried again, and after how long. No I/O.

A retry budget keeps retries from amplifying an outage: at any time, retries in
flight may be at most ``ratio`` of the requests in flight, but at least
``min_per_second`` retries per second are always allowed (so a quiet service can
still retry). Backoff is exponential with full jitter, capped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryBudget", "backoff"]


@dataclass
class RetryBudget:
    ratio: float = 0.2
    min_per_second: float = 10.0
    active_requests: int = 0
    active_retries: int = 0
    _window_start: float = 0.0
    _window_retries: int = 0

    def may_retry(self, now: float) -> bool:
        """Whether one more retry fits; if so it is counted as started."""
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._window_retries = 0
        within_ratio = self.active_retries + 1 <= self.ratio * max(self.active_requests, 1)
        within_floor = self._window_retries < self.min_per_second
        if not (within_ratio or within_floor):
            return False
        self.active_retries += 1
        self._window_retries += 1
        return True

    def retry_done(self) -> None:
        self.active_retries = max(0, self.active_retries - 1)


def backoff(attempt: int, base: float = 0.025, cap: float = 0.25,
            rng: random.Random | None = None) -> float:  # fmt: skip
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): full jitter."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(0.0, ceiling)
