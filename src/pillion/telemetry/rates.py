"""Rates and quantiles from two readings of cumulative Prometheus values. No I/O.

A counter only goes up, except when the process (or a proxy worker) that counts
restarts: a reading below the previous one is a reset, and the increase since
is the new reading itself (Prometheus' ``rate()`` makes the same call).

A quantile comes from the increase of each histogram bucket between two
readings, interpolated linearly inside the bucket where the rank falls, as
Prometheus' ``histogram_quantile()`` does: the first bucket starts at 0, and a
rank in the ``+Inf`` bucket answers the highest finite bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["bucket_increase", "counter_increase", "histogram_quantile", "share"]


def counter_increase(previous: float | None, current: float) -> float:
    """How much a counter grew from ``previous`` to ``current`` (None: first seen)."""
    if previous is None:
        return 0.0
    if current < previous:  # a reset: it counted from zero up to ``current``
        return current
    return current - previous


def bucket_increase(previous: Sequence[float] | None, current: Sequence[float]) -> list[float]:
    """The increase of each cumulative bucket count (``le`` order, ``+Inf`` last).

    Buckets reset together: if any went down, the whole reading counts from zero.
    A change of the bucket layout counts as a reset too.
    """
    if previous is None:
        return [0.0] * len(current)
    if len(previous) != len(current) or any(c < p for p, c in zip(previous, current, strict=True)):
        return list(current)
    return [c - p for p, c in zip(previous, current, strict=True)]


def histogram_quantile(
    q: float, bounds: Sequence[float], cumulative: Sequence[float]
) -> float | None:
    """The ``q`` quantile (0..1) of observations counted in cumulative buckets.

    ``bounds`` are the upper bounds in increasing order, ``math.inf`` last;
    ``cumulative`` the count at or below each. None when nothing was observed.
    """
    if not cumulative or len(bounds) != len(cumulative):
        return None
    total = cumulative[-1]
    if total <= 0:
        return None
    rank = q * total
    for index, count in enumerate(cumulative):
        if count >= rank:
            upper = bounds[index]
            if math.isinf(upper):  # above the last finite bound: say that bound
                return bounds[index - 1] if index > 0 else None
            lower = bounds[index - 1] if index > 0 else 0.0
            below = cumulative[index - 1] if index > 0 else 0.0
            inside = count - below
            if inside <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / inside
    return None


def share(part: float, whole: float) -> float | None:
    """``part / whole``, or None when there is no whole (no requests: no error rate)."""
    return part / whole if whole > 0 else None
