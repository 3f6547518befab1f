"""The history's rings: a fixed budget, aligned points, a cap on targets."""

from __future__ import annotations

import math

import pytest

from pillion.telemetry.history import History, Ring

FIELDS = ("rate", "p99")


def test_ring_keeps_the_last_values_oldest_first() -> None:
    ring = Ring(3)
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        ring.append(value)
    assert list(ring) == [3.0, 4.0, 5.0]
    assert len(ring) == 3
    assert ring.capacity == 3


def test_ring_exports_missing_values_as_none() -> None:
    ring = Ring(4)
    ring.append(1.0)
    ring.append(math.nan)
    assert ring.exported() == [1.0, None]
    assert not ring.empty()
    empty = Ring(2)
    empty.append(math.nan)
    assert empty.empty()


def test_ring_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Ring(0)


def test_history_never_holds_more_than_its_points() -> None:
    history: History[str] = History(points=5, max_targets=2, fields=FIELDS)
    for t in range(100):
        history.add(float(t), {"a": {"rate": float(t), "p99": None}})
    assert history.times.exported() == [95.0, 96.0, 97.0, 98.0, 99.0]
    rings = history.targets()["a"]
    assert rings["rate"].exported() == [95.0, 96.0, 97.0, 98.0, 99.0]
    assert rings["p99"].exported() == [None] * 5
    assert history.budget_bytes == 8 * 5 * (1 + 2 * 2)


def test_a_target_appearing_later_is_aligned_on_the_time_axis() -> None:
    history: History[str] = History(points=4, max_targets=4, fields=FIELDS)
    history.add(1.0, {"a": {"rate": 1.0}})
    history.add(2.0, {"a": {"rate": 2.0}, "b": {"rate": 20.0}})
    history.add(3.0, {"b": {"rate": 30.0}})
    targets = history.targets()
    assert targets["a"]["rate"].exported() == [1.0, 2.0, None]
    assert targets["b"]["rate"].exported() == [None, 20.0, 30.0]


def test_targets_beyond_the_cap_are_dropped_and_said_so() -> None:
    history: History[str] = History(points=3, max_targets=2, fields=FIELDS)
    values = {name: {"rate": 1.0} for name in ("a", "b", "c", "d")}
    history.add(1.0, values)
    assert len(history) == 2
    assert history.capped
    assert history.dropped == 2
    history.add(2.0, {"a": {"rate": 1.0}})
    assert not history.capped
    assert history.dropped == 0


def test_a_target_silent_for_the_whole_window_frees_its_place() -> None:
    history: History[str] = History(points=2, max_targets=1, fields=FIELDS)
    history.add(1.0, {"old": {"rate": 1.0}})
    history.add(2.0, {"new": {"rate": 1.0}})
    assert history.capped  # "old" still has a value in the window
    history.add(3.0, {"new": {"rate": 1.0}})  # "old" is all missing now: gone, "new" waits
    history.add(4.0, {"new": {"rate": 2.0}})
    assert list(history.targets()) == ["new"]
    assert history.targets()["new"]["rate"].exported() == [None, 2.0]


def test_a_target_with_no_value_takes_no_place() -> None:
    history: History[str] = History(points=2, max_targets=1, fields=FIELDS)
    history.add(1.0, {"idle": {"rate": None, "p99": None}, "busy": {"rate": 3.0}})
    assert list(history.targets()) == ["busy"]
