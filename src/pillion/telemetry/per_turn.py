"""Work done once per turn of the event loop, however often it was asked for.

Hot paths tally their counts in plain attributes and ask for a flush; the flush
runs once, after the callbacks of this turn (a busy loop handles many requests or
packets per turn), so ``prometheus_client``'s locks are paid once for all of them.
A scrape is served on a later turn, after the flush. No loop running (a direct
call, a test): the flush runs at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["PerTurn"]


class PerTurn:
    __slots__ = ("_scheduled", "_work")

    def __init__(self, work: Callable[[], None]) -> None:
        self._work = work
        self._scheduled = False

    def request(self) -> None:
        """Run the work at the end of this turn (once, however often asked)."""
        if self._scheduled:
            return
        self._scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self.run)
        except RuntimeError:
            self.run()

    def run(self) -> None:
        self._scheduled = False
        self._work()
