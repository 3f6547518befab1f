"""Request timeouts grouped in slots: each fires once, never before its time; a
cancelled one never fires, also when cancelled by another of its slot."""

from __future__ import annotations

import asyncio

from pillion.proxy.deadlines import Deadline, Deadlines


def test_deadlines_fire_after_their_time_and_cancelled_ones_never() -> None:
    async def scenario() -> tuple[list[tuple[str, float, float]], int]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        fired: list[tuple[str, float, float]] = []
        done = asyncio.Event()
        handles: dict[str, Deadline] = {}

        def callback(name: str, due: float) -> None:
            fired.append((name, due, loop.time()))
            if name == "first":
                handles["same-slot"].cancel()  # cancelled by a neighbour of its slot
            if name == "last":
                done.set()

        def add(name: str, delay: float) -> None:
            due = loop.time() + delay
            handles[name] = deadlines.add(delay, lambda: callback(name, due))

        add("first", 0.01)
        add("same-slot", 0.01)
        add("cancelled", 0.02)
        add("later", 0.12)
        add("last", 0.2)
        handles["cancelled"].cancel()
        await asyncio.wait_for(done.wait(), 10)
        return fired, len(deadlines)

    fired, left = asyncio.run(scenario())
    assert sorted(name for name, _, _ in fired) == ["first", "last", "later"]
    assert all(at >= due for _, due, at in fired)  # never early
    assert left == 0  # nothing kept once fired or cancelled
