"""The dashboard's sampling: every few seconds, a reading of Pillion's own series
becomes one point of each target's history (``telemetry.history``).

It runs from the admin server's start to its close, whether or not anyone looks,
so the page opens on the last 15 minutes. A sample reads the registry on the
event loop, as a scrape of ``/metrics`` does (only ``pillion_*`` families are
kept); its cost is bounded by the number of series Pillion itself has, not by
what the exporters serve. The memory it keeps is fixed at start: ``POINTS``
points for at most ``MAX_TARGETS`` targets, and the last ``RECENT_RECORDS``
warnings and errors. ``PILLION_DASHBOARD_INTERVAL`` (seconds, 0.1 to 60) changes the
time between points, and so the window the same points cover (for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from typing import Final

from pillion import __version__
from pillion.config import PillionConfig
from pillion.runtime.control import Control
from pillion.telemetry import Metrics
from pillion.telemetry.history import History
from pillion.telemetry.readings import Reading, read_registry
from pillion.telemetry.recent import RecentRecords
from pillion.telemetry.stats import StatsContext, StatsDocument, stats_document
from pillion.telemetry.traffic import FIELDS, Target, TrafficTally

__all__ = ["INTERVAL", "MAX_TARGETS", "POINTS", "StatsSampler", "sampling_interval"]

log = logging.getLogger("pillion.admin")

INTERVAL: Final = 5.0  # seconds between two points
POINTS: Final = 180  # 15 minutes at one point every 5 s
MAX_TARGETS: Final = 64  # listeners, routes, clusters and log inputs/outputs kept
RECENT_RECORDS: Final = 50
INTERVAL_VARIABLE: Final = "PILLION_DASHBOARD_INTERVAL"


def sampling_interval(environ: Mapping[str, str]) -> float:
    """``INTERVAL``, or the seconds ``PILLION_DASHBOARD_INTERVAL`` gives (0.1 to 60)."""
    given = environ.get(INTERVAL_VARIABLE)
    if not given:
        return INTERVAL
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not 0.1 <= seconds <= 60:  # NaN too
        log.warning("ignored: not a number of seconds from 0.1 to 60",
                    extra={"key": INTERVAL_VARIABLE, "reason": given[:40]})  # fmt: skip
        return INTERVAL
    return seconds


class StatsSampler:
    """Keeps the history and the recent errors; answers ``document()``."""

    def __init__(self, metrics: Metrics, *, interval: float = INTERVAL) -> None:
        self._metrics = metrics
        self.interval = interval
        self.history: History[Target] = History(
            points=POINTS, max_targets=MAX_TARGETS, fields=FIELDS
        )
        self.recent = RecentRecords(RECENT_RECORDS)
        self._tally = TrafficTally()
        self._task: asyncio.Task[None] | None = None
        self._reading: Reading | None = None  # the last sample's

    def start(self) -> None:
        self.recent.attach()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self.recent.detach()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def adopt(self, previous: StatsSampler) -> None:
        """Carry on from ``previous`` (the admin server replaced by a reload), which
        stops sampling and collecting records now: one history, one ring."""
        previous.recent.detach()
        if previous._task is not None:
            previous._task.cancel()  # awaited by its ``stop``
        self.history = previous.history
        self._tally = previous._tally
        self._reading = previous._reading
        self.recent.adopt(previous.recent)

    def sample(self) -> None:
        """Take one point now."""
        reading = read_registry(self._metrics.registry)
        points = self._tally.update(reading, time.monotonic())
        if points:
            self.history.add(time.time(), points)
        self._reading = reading

    def document(self, control: Control) -> StatsDocument:
        """The dashboard's document now (``GET /stats``), from the last sample: however
        many pages poll, the registry is read once an interval."""
        if self._reading is None:
            self._reading = read_registry(self._metrics.registry)
        return stats_document(
            now=time.time(),
            reading=self._reading,
            history=self.history,
            recent=self.recent.records(),
            recent_seen=self.recent.seen,
            context=_context(control, self.interval),
        )

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a bug: the next sample may do better; the page shows a gap
                log.exception("dashboard sample failed")
            await asyncio.sleep(self.interval)


def _context(control: Control, interval: float) -> StatsContext:
    config: PillionConfig = control.config
    endpoints: dict[str, list[str]] = {}
    if config.proxy is not None:
        endpoints = {c.name: [str(e) for e in c.endpoints] for c in config.proxy.clusters}
    logs = config.logs
    return StatsContext(
        version=__version__,
        interval=interval,
        health=control.health().as_json(),
        cluster_endpoints=endpoints,
        memory_buffer_limit=logs.memory_buffer if logs is not None else None,
        disk_buffer_limit=(
            logs.disk_buffer.max_size if logs is not None and logs.disk_buffer else None
        ),
    )
