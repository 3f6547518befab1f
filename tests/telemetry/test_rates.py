"""Counter increases with resets, bucket increases and histogram quantiles."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pillion.telemetry.rates import bucket_increase, counter_increase, histogram_quantile, share

INF = math.inf


def test_counter_increase_is_the_difference() -> None:
    assert counter_increase(10.0, 25.0) == 15.0
    assert counter_increase(10.0, 10.0) == 0.0


def test_counter_first_seen_counts_nothing() -> None:
    assert counter_increase(None, 1234.0) == 0.0


def test_counter_reset_counts_from_zero() -> None:
    # a worker restarted: it counted 7 since, the 100 before are not lost nor negative
    assert counter_increase(100.0, 7.0) == 7.0


def test_bucket_increase_per_bucket() -> None:
    assert bucket_increase([1, 3, 4], [2, 6, 9]) == [1, 3, 5]
    assert bucket_increase(None, [2, 6, 9]) == [0, 0, 0]


def test_bucket_reset_takes_the_whole_reading() -> None:
    assert bucket_increase([5, 8, 10], [1, 2, 2]) == [1, 2, 2]
    assert bucket_increase([5, 8], [1, 2, 2]) == [1, 2, 2]  # another layout


def test_quantile_interpolates_inside_the_bucket() -> None:
    bounds = [0.1, 0.2, 0.4, INF]
    # 10 observations in (0, 0.1], 10 in (0.1, 0.2]: the median is the end of the first
    assert histogram_quantile(0.5, bounds, [10, 20, 20, 20]) == pytest.approx(0.1)
    # p75: halfway through the second bucket
    assert histogram_quantile(0.75, bounds, [10, 20, 20, 20]) == pytest.approx(0.15)
    # the first bucket starts at zero
    assert histogram_quantile(0.25, bounds, [10, 20, 20, 20]) == pytest.approx(0.05)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, [0.1, 0.2, INF], [1, 2, 100]) == 0.2


def test_quantile_of_nothing_is_none() -> None:
    assert histogram_quantile(0.5, [0.1, INF], [0, 0]) is None
    assert histogram_quantile(0.5, [], []) is None
    assert histogram_quantile(0.5, [0.1, INF], [1]) is None  # mismatched


def test_quantile_from_deltas_sees_only_the_recent_observations() -> None:
    bounds = [0.01, 0.1, 1.0, INF]
    before = [1000, 1000, 1000, 1000]  # an hour of fast requests (cumulative "le" counts)
    after = [1000, 1000, 1010, 1010]  # then ten slow ones
    recent = bucket_increase(before, after)  # still cumulative: [0, 0, 10, 10]
    p50 = histogram_quantile(0.5, bounds, recent)
    assert p50 == pytest.approx(0.55)  # halfway through (0.1, 1.0]
    assert histogram_quantile(0.5, bounds, after) == pytest.approx(0.00505)  # all time: fast


@given(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8),
    st.floats(min_value=0, max_value=1),
)
def test_quantile_stays_within_the_bounds(counts: list[int], q: float) -> None:
    bounds = [0.001 * 2**i for i in range(len(counts))] + [INF]
    cumulative = [float(sum(counts[: i + 1])) for i in range(len(counts))]
    cumulative.append(cumulative[-1])
    value = histogram_quantile(q, bounds, cumulative)
    if cumulative[-1] == 0:
        assert value is None
    else:
        assert value is not None
        assert 0 <= value <= bounds[-2]


def test_share() -> None:
    assert share(1, 4) == 0.25
    assert share(0, 0) is None
