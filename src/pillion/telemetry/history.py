"""Time series of the last minutes, in a memory budget fixed at start. No I/O.

``History`` keeps one time axis and up to ``max_targets`` targets (a listener, a
route, a cluster...), each with one ring of ``points`` floats per field (rate,
error share, p50, p99): ``array('d')``, 8 bytes a point, allocated whole when the
target first appears, all aligned on that axis (point ``i`` of every ring belongs
to time ``i``). A missing value is NaN (``None`` once exported).

Beyond ``max_targets`` a new target is not kept; ``dropped`` says how many were
turned away at the last point, so a reader knows the view is capped. A target
with no value in the whole window frees its place.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Hashable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["History", "Ring"]

K = TypeVar("K", bound=Hashable)


class Ring:
    """The last ``capacity`` floats, oldest first; NaN for a missing value."""

    __slots__ = ("_next", "_size", "_values")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a ring holds at least one point")
        self._values = array("d", [math.nan]) * capacity
        self._next = 0  # where the next value goes
        self._size = 0

    @property
    def capacity(self) -> int:
        return len(self._values)

    def __len__(self) -> int:
        return self._size

    def append(self, value: float) -> None:
        self._values[self._next] = value
        self._next = (self._next + 1) % len(self._values)
        self._size = min(self._size + 1, len(self._values))

    def __iter__(self) -> Iterator[float]:
        start = (self._next - self._size) % len(self._values)
        for offset in range(self._size):
            yield self._values[(start + offset) % len(self._values)]

    def exported(self, digits: int | None = None) -> list[float | None]:
        """The values for JSON: NaN (missing) as None, rounded to ``digits`` decimals
        if given."""
        if digits is None:
            return [None if math.isnan(v) else v for v in self]
        return [None if math.isnan(v) else round(v, digits) for v in self]

    def empty(self) -> bool:
        """Whether no value in the window is known."""
        return all(math.isnan(v) for v in self)


class History(Generic[K]):
    """Aligned rings: one time axis, and for each of at most ``max_targets`` targets
    (a listener, a route...) one ring per name in ``fields`` (rate, p99...)."""

    def __init__(self, *, points: int, max_targets: int, fields: tuple[str, ...]) -> None:
        self.points = points
        self.max_targets = max_targets
        self.fields = fields
        self.times = Ring(points)
        self._targets: dict[K, tuple[Ring, ...]] = {}
        self._turned_away: set[K] = set()  # at the last point, for the cap

    @property
    def capped(self) -> bool:
        """Whether some target is not kept, at the last point, because of the cap."""
        return bool(self._turned_away)

    @property
    def dropped(self) -> int:
        """How many targets had values at the last point but are not kept (the cap)."""
        return len(self._turned_away)

    @property
    def budget_bytes(self) -> int:
        """The most the rings' values take, whatever comes: 8 bytes a point."""
        return 8 * self.points * (1 + self.max_targets * len(self.fields))

    def add(self, time: float, values: Mapping[K, Mapping[str, float | None]]) -> None:
        """One point at ``time`` for every target (NaN where ``values`` has none)."""
        self.times.append(time)
        self._turned_away.clear()
        for key, rings in self._targets.items():
            _append(rings, self.fields, values.get(key, {}))
        for key, fields in values.items():
            if key in self._targets or all(v is None for v in fields.values()):
                continue
            if len(self._targets) >= self.max_targets:
                self._turned_away.add(key)
                continue
            rings = self._targets[key] = tuple(Ring(self.points) for _ in self.fields)
            for ring in rings:  # aligned: missing before it appeared
                for _ in range(len(self.times) - 1):
                    ring.append(math.nan)
            _append(rings, self.fields, fields)
        for key in [k for k, rings in self._targets.items() if all(r.empty() for r in rings)]:
            del self._targets[key]  # nothing for the whole window: its place is free

    def targets(self) -> dict[K, dict[str, Ring]]:
        """Each kept target's rings by field name."""
        return {
            key: dict(zip(self.fields, rings, strict=True)) for key, rings in self._targets.items()
        }

    def __len__(self) -> int:
        return len(self._targets)


def _append(
    rings: tuple[Ring, ...], names: tuple[str, ...], values: Mapping[str, float | None]
) -> None:
    for name, ring in zip(names, rings, strict=True):
        value = values.get(name)
        ring.append(math.nan if value is None else value)
