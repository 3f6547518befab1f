"""When the soak's faults come: the intervals (the numbers below at ``--scale 1``,
scaled down for short runs), the warm-up, and the loop that keeps a fault's beat."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# The schedule at --scale 1, in seconds.
ROTATE_EVERY, RELOAD_EVERY, RENEW_EVERY, RESTART_EVERY = 60.0, 60.0, 30.0, 300.0


@dataclass(frozen=True)
class Schedule:
    seconds: float
    rotate: float
    reload: float
    renew: float
    restart: float
    down: float
    sample: float
    aligned: bool  # reloads at the rotations' moments, not half an interval before

    @property
    def warmup(self) -> float:
        """The first 10 % of the run, at least 30 s."""
        return max(30.0, 0.1 * self.seconds)


def schedule(args: argparse.Namespace) -> Schedule:
    scale = args.scale if args.scale is not None else min(1.0, args.minutes / 5)
    return Schedule(
        seconds=args.minutes * 60,
        rotate=args.rotate_every or ROTATE_EVERY * scale,
        reload=args.reload_every or RELOAD_EVERY * scale,
        renew=args.renew_every or RENEW_EVERY * scale,
        restart=args.restart_every or RESTART_EVERY * scale,
        down=args.down,
        sample=args.sample_every,
        aligned=args.aligned,
    )


async def every(
    interval: float,
    started: float,
    until: float,
    action: Callable[[int], Awaitable[None]],
    *,
    first: float,
) -> None:
    """``action(0)``, ``action(1)``... at ``first`` after ``started`` (or half-way to
    ``until`` if that is sooner), then every ``interval``, until ``until``."""
    first = min(first, (until - started) / 2)
    count = 0
    while (at := started + first + count * interval) < until:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        await action(count)
        count += 1


def describe(p: Schedule) -> str:
    return (
        f"{p.seconds / 60:g} min: rotate every {p.rotate:g}s, reload every {p.reload:g}s, "
        f"renew every {p.renew:g}s, upstream down {p.down:g}s every {p.restart:g}s, "
        f"warm-up {p.warmup:g}s"
    )
