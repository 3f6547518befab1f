"""Local rate limiting: token buckets, refilled lazily, one per key. No I/O.

``take(key, now)`` answers 0.0 when the request may pass, else the seconds until
a token is due (for ``Retry-After``). Buckets refill on use, not on a timer; when
more than ``max_keys`` keys are tracked, full buckets (idle keys) are forgotten,
which changes nothing for them: a full bucket is what a new key gets.
"""

from __future__ import annotations

from pillion.config.proxy import RateLimitConfig
from pillion.http.headers import Headers

__all__ = ["RateLimit", "TokenBuckets"]


class TokenBuckets:
    __slots__ = ("_buckets", "burst", "max_keys", "rate")

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[bytes, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: bytes, now: float) -> float:
        """Take one token for ``key``: 0.0 if there was one, else seconds to wait."""
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full = [
            key
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) > self.max_keys:  # all busy: forget the oldest half
            for key in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimit:
    """A listener's or route's limit: buckets, and what keys them."""

    __slots__ = ("buckets", "header", "key")

    def __init__(self, config: RateLimitConfig) -> None:
        self.buckets = TokenBuckets(config.rate, config.burst)
        self.key = config.key
        self.header = config.header.lower().encode() if config.header else b""

    def wait(
        self, client_ip: bytes, headers: Headers, now: float, identity: bytes | None = None
    ) -> float:
        """Take a token for this request: 0.0 if it may pass, else seconds to wait."""
        key = b""
        if self.key == "client":
            key = client_ip
        elif self.key == "identity":
            key = identity or b""
        elif self.key == "header":
            for name, value in headers:
                if name.lower() == self.header:
                    key = value
                    break
        return self.buckets.take(key, now)
