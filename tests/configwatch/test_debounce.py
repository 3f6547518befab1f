"""The debounce rule alone, fed with times: ``min`` after the last change, at most
``max`` after the first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pillion.configwatch.debounce import Debounce


def test_nothing_waits_until_a_change() -> None:
    debounce = Debounce(1.0, 10.0)
    assert debounce.due() is None
    assert not debounce.waiting
    assert not debounce.fire(100.0)


def test_due_min_after_the_last_change() -> None:
    debounce = Debounce(1.0, 10.0)
    debounce.change(100.0)
    assert debounce.due() == 101.0
    assert not debounce.fire(100.9)
    debounce.change(100.5)  # another change within min: wait again
    assert debounce.due() == 101.5
    assert not debounce.fire(101.2)
    assert debounce.fire(101.5)
    assert debounce.due() is None  # fired: nothing waits
    assert not debounce.fire(200.0)


def test_max_bounds_a_stream_of_changes() -> None:
    debounce = Debounce(1.0, 3.0)
    now = 100.0
    fired_at = None
    while fired_at is None:
        debounce.change(now)  # a change every half second, for ever
        now += 0.5
        if debounce.fire(now):
            fired_at = now
    assert fired_at == 103.0
    debounce.change(103.2)  # the next stream starts its own max
    assert debounce.due() == 104.2


def test_zero_waits_fire_at_once() -> None:
    debounce = Debounce(0.0, 0.0)
    debounce.change(5.0)
    assert debounce.fire(5.0)


def test_reset_forgets_the_waiting_changes() -> None:
    debounce = Debounce(1.0, 2.0)
    debounce.change(1.0)
    debounce.reset()
    assert debounce.due() is None


@given(
    st.floats(0, 5), st.floats(0, 5),
    st.lists(st.floats(0, 3), min_size=1, max_size=30),
)  # fmt: skip
def test_due_is_min_after_the_last_change_capped_at_max_after_the_first(
    low: float, extra: float, gaps: list[float]
) -> None:
    max_wait = low + extra
    debounce = Debounce(low, max_wait)
    now = 0.0
    first = None
    for gap in gaps:
        now += gap
        if debounce.fire(now):
            first = None
        debounce.change(now)
        first = now if first is None else first
        assert debounce.due() == min(now + low, first + max_wait)
