from __future__ import annotations

import math
import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from pillion.proxy.balancing import Balancer, Endpoint, OutlierPolicy
from pillion.proxy.retries import RetryBudget, backoff


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint(("127.0.0.1", 9000 + i)) for i in range(n)]


def _pick(balancer: Balancer, now: float) -> Endpoint:
    endpoint = balancer.pick(now)
    assert endpoint is not None
    return endpoint


def test_no_endpoints_yet_picks_none() -> None:
    assert Balancer([]).pick(0.0) is None


def test_round_robin_spreads_evenly() -> None:
    balancer = Balancer(endpoints(3))
    picks = Counter(_pick(balancer, 0.0).address[1] for _ in range(300))
    assert set(picks.values()) == {100}


def test_least_request_prefers_the_idle() -> None:
    eps = endpoints(2)
    eps[0].active = 50
    balancer = Balancer(eps, "least_request", rng=random.Random(1))
    assert {_pick(balancer, 0.0).address[1] for _ in range(20)} == {9001}


def test_one_bad_endpoint_is_ejected_then_returns() -> None:
    eps = endpoints(3)
    balancer = Balancer(eps, outliers=OutlierPolicy(consecutive=3, base_ejection=10.0))
    bad = eps[1]
    assert [balancer.report(bad, failed=True, now=0.0) for _ in range(3)] == [False, False, True]
    assert {_pick(balancer, 1.0).address[1] for _ in range(10)} == {9000, 9002}  # traffic moves
    assert bad in [balancer.pick(11.0) for _ in range(3)]  # back after the ejection time
    for _ in range(3):
        balancer.report(bad, failed=True, now=12.0)
    assert bad.ejected_until == 12.0 + 20.0  # ejected a second time: twice as long


def test_a_success_resets_the_count() -> None:
    eps = endpoints(2)
    balancer = Balancer(eps, outliers=OutlierPolicy(consecutive=2))
    balancer.report(eps[0], failed=True, now=0.0)
    balancer.report(eps[0], failed=False, now=0.0)
    assert not balancer.report(eps[0], failed=True, now=0.0)


def test_never_more_than_max_ejected_and_all_out_still_serves() -> None:
    eps = endpoints(4)
    balancer = Balancer(eps, outliers=OutlierPolicy(consecutive=1, max_ejected=0.5))
    ejected = [balancer.report(e, failed=True, now=0.0) for e in eps]
    assert ejected == [True, True, False, False]
    one = Balancer(endpoints(1), outliers=OutlierPolicy(consecutive=1, max_ejected=1.0))
    one.report(one.endpoints[0], failed=True, now=0.0)
    assert one.pick(1.0) is one.endpoints[0]  # all ejected: still somewhere to go


def test_retry_budget_bounds_retries_by_ratio_with_a_floor() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=3)
    budget.active_requests = 100
    granted = sum(budget.may_retry(0.0) for _ in range(50))
    assert granted == 20  # 20% of 100 in flight
    quiet = RetryBudget(ratio=0.2, min_per_second=3)
    quiet.active_requests = 1
    assert sum(quiet.may_retry(0.0) for _ in range(10)) == 3  # the floor
    assert sum(quiet.may_retry(1.5) for _ in range(10)) == 3  # a new second


def test_retry_budget_caps_retries_in_flight_and_counts_a_retry_once() -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0, max_active=2)
    budget.active_requests = 10
    assert [budget.may_retry(0.0) for _ in range(3)] == [True, True, False]
    assert budget.may_retry(0.0, already_retrying=True)  # its second retry: still 2 in flight
    assert budget.active_retries == 2
    budget.retry_done()
    assert budget.may_retry(0.0)
    idle = RetryBudget(ratio=0.2, min_per_second=0)
    assert not idle.may_retry(0.0)  # no floor, nothing in flight: no retry


@given(st.integers(0, 1000), st.lists(st.floats(0, 0.2), max_size=300))
def test_retries_in_flight_respect_the_budget(active: int, gaps: list[float]) -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=5, max_active=10_000)
    budget.active_requests = active
    now = 0.0
    for gap in gaps:
        now += gap
        budget.may_retry(now)
    # what the ratio allows, plus the floor of each one-second window so far
    assert budget.active_retries <= 0.2 * active + 5 * (math.floor(now) + 1)


def test_backoff_is_jittered_and_capped() -> None:
    rng = random.Random(7)
    waits = [backoff(attempt, base=0.025, cap=0.25, rng=rng) for attempt in range(1, 10)]
    assert all(0 <= w <= 0.25 for w in waits)
    assert all(backoff(1, rng=rng) <= 0.025 for _ in range(100))
