"""Request timeouts, grouped: one loop timer per 50 ms slot, not one per request.

A request's timeout goes into the slot its time falls in and fires with it, at most
``GRAIN`` late; a request that ends first takes itself out of its slot (a dict
removal). At thousands of requests a second this replaces a ``call_later`` and a
``cancel`` (a timer handle, two heap operations in the loop) per request with one
timer per slot. No I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

__all__ = ["GRAIN", "Deadline", "Deadlines"]

GRAIN: Final = 0.05  # seconds: how late a timeout may fire


class Deadline:
    """One pending timeout; ``cancel`` it when the request ends first."""

    __slots__ = ("callback", "owner", "slot")

    def __init__(self, owner: Deadlines, slot: int, callback: Callable[[], None]) -> None:
        self.owner = owner
        self.slot = slot
        self.callback = callback

    def cancel(self) -> None:
        self.owner.cancel(self)


class Deadlines:
    """The pending timeouts of one listener's requests, by slot."""

    __slots__ = ("_loop", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, dict[Deadline, None]] = {}

    def add(self, delay: float, callback: Callable[[], None]) -> Deadline:
        """Call ``callback`` ``delay`` seconds from now (up to ``GRAIN`` later)."""
        slot = int((self._loop.time() + delay) / GRAIN) + 1
        deadline = Deadline(self, slot, callback)
        pending = self._slots.get(slot)
        if pending is None:
            pending = self._slots[slot] = {}
            self._loop.call_at(slot * GRAIN, self._fire, slot)
        pending[deadline] = None
        return deadline

    def cancel(self, deadline: Deadline) -> None:
        pending = self._slots.get(deadline.slot)
        if pending is not None:
            pending.pop(deadline, None)

    def _fire(self, slot: int) -> None:
        pending = self._slots.get(slot)
        while pending:  # one at a time, oldest first: a callback may cancel others
            deadline = next(iter(pending))
            del pending[deadline]
            deadline.callback()
        self._slots.pop(slot, None)

    def __len__(self) -> int:
        return sum(len(pending) for pending in self._slots.values())
