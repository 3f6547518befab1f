"""When a stream of changes has settled: no clock, no I/O; fed with times.

A change is acted on ``min`` after the last change, but never later than
``max`` after the first change still waiting: a file rewritten every half
second would otherwise never settle.
"""

from __future__ import annotations

__all__ = ["Debounce"]


class Debounce:
    def __init__(self, min_wait: float, max_wait: float) -> None:
        assert 0 <= min_wait <= max_wait
        self.min_wait = min_wait
        self.max_wait = max_wait
        self._first: float | None = None  # the first change still waiting
        self._last: float | None = None

    @property
    def waiting(self) -> bool:
        return self._first is not None

    def change(self, now: float) -> None:
        """A change seen at ``now``."""
        if self._first is None:
            self._first = now
        self._last = now

    def due(self) -> float | None:
        """When the waiting changes are to be acted on; None when nothing waits."""
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.min_wait, self._first + self.max_wait)

    def fire(self, now: float) -> bool:
        """True (and nothing waits any more) when the waiting changes are due at ``now``."""
        due = self.due()
        if due is None or now < due:
            return False
        self.reset()
        return True

    def reset(self) -> None:
        self._first = self._last = None
