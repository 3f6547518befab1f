"""Choosing an endpoint of a cluster, and ejecting the ones that fail. No I/O.

Balancing: round-robin, or least-request by two random choices (Envoy's
default: nearly as good as scanning every endpoint, at constant cost). Outlier
ejection: an endpoint with ``consecutive`` gateway errors or 5xx in a row is
ejected for ``base_ejection`` times the number of times it was ejected before
(so a flapping endpoint stays out longer), never more than ``max_ejected`` of
the endpoints at once, and it is back on its own when the time is up.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Balancer", "Endpoint", "OutlierPolicy"]

Policy = Literal["round_robin", "least_request"]


@dataclass
class Endpoint:
    address: tuple[str, int]
    active: int = 0  # requests in flight
    failures: int = 0  # consecutive
    ejections: int = 0  # times ejected so far
    ejected_until: float = 0.0

    def available(self, now: float) -> bool:
        return self.ejected_until <= now


@dataclass(frozen=True)
class OutlierPolicy:
    consecutive: int = 5
    base_ejection: float = 30.0
    max_ejection: float = 300.0
    max_ejected: float = 0.5  # share of the endpoints that may be out at once


class Balancer:
    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        policy: Policy = "round_robin",
        outliers: OutlierPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.policy = policy
        self.outliers = outliers or OutlierPolicy()
        self._next = 0
        self._rng = rng or random.Random()  # noqa: S311 - load spreading, not secrets
        self._out_until = 0.0  # no endpoint is ejected from then on

    def pick(self, now: float) -> Endpoint | None:
        """An endpoint for the next request (an ejected one only if all are out);
        None when there are none (names not resolved yet)."""
        candidates = self.endpoints
        if now < self._out_until:  # someone is ejected: skip them (unless all are)
            candidates = [e for e in candidates if e.available(now)] or candidates
        count = len(candidates)
        if not count:
            return None
        if self.policy == "least_request" and count > 1:
            random = self._rng.random
            first = int(random() * count)
            second = int(random() * (count - 1))
            if second >= first:
                second += 1  # two distinct endpoints, uniformly
            a, b = candidates[first], candidates[second]
            return a if a.active <= b.active else b
        endpoint = candidates[self._next % len(candidates)]
        self._next += 1
        return endpoint

    def report(self, endpoint: Endpoint, *, failed: bool, now: float) -> bool:
        """Record one result; True when it got ``endpoint`` ejected."""
        if not failed:
            endpoint.failures = 0
            return False
        endpoint.failures += 1
        policy = self.outliers
        if endpoint.failures < policy.consecutive or not endpoint.available(now):
            return False
        ejected = sum(1 for e in self.endpoints if not e.available(now))
        if ejected + 1 > policy.max_ejected * len(self.endpoints):
            return False  # ejecting more would leave too little capacity
        endpoint.ejections += 1
        endpoint.failures = 0
        duration = min(policy.max_ejection, policy.base_ejection * endpoint.ejections)
        endpoint.ejected_until = now + duration
        self._out_until = max(self._out_until, endpoint.ejected_until)
        return True
