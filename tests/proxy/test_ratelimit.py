from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pillion.proxy.ratelimit import TokenBuckets


def test_burst_then_the_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take(b"a", 0.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert buckets.take(b"a", 0.25) == pytest.approx(0.25)  # half a token came back
    assert buckets.take(b"a", 0.5) == 0.0  # a whole one now
    assert buckets.take(b"b", 0.5) == 0.0  # another key has its own bucket


def test_refill_is_capped_at_the_burst() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    assert buckets.take(b"a", 0.0) == 0.0
    assert [buckets.take(b"a", 100.0) for _ in range(3)] == [0.0, 0.0, 1.0]


def test_idle_keys_are_forgotten_past_max_keys() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=10)
    for i in range(10):
        buckets.take(b"%d" % i, 0.0)
    buckets.take(b"new", 5.0)  # the others are full again by now: forgotten
    assert len(buckets) <= 10
    assert buckets.take(b"new", 5.0) == pytest.approx(1.0)  # "new" itself was kept


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_invalid_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be"):
        TokenBuckets(rate, burst)


@given(
    st.floats(0.1, 100.0),
    st.integers(1, 50),
    st.lists(st.floats(0.0, 0.5), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    buckets = TokenBuckets(rate, burst)
    now, passed = 0.0, 0
    for gap in gaps:
        now += gap
        passed += buckets.take(b"k", now) == 0.0
    assert passed <= burst + rate * now + 1e-6
