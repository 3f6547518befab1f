"""One ``config.watch[]`` entry: hash its paths at every scan, let the changes
settle, validate, notify.

The first digest, at start, is the baseline: it never notifies (the app read
those files when it started); on a reload, the baseline is the previous
component's, so a change it had not notified yet is not lost. A settled change
whose content equals what the app was last told about (a touch, or an edit
undone in time) notifies no one. A change refused by ``validate`` is not
notified, and the baseline stays: the next change is validated afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from pillion.config.configwatch import WatchConfig
from pillion.configwatch.debounce import Debounce
from pillion.configwatch.metrics import ConfigFamilies
from pillion.configwatch.validation import ValidationFailed, validate
from pillion.notify import Notifier
from pillion.watch import ContentHasher, Snapshot

__all__ = ["Watcher", "wait_for_change"]

log = logging.getLogger("pillion.config")

SETTLE = 0.05  # after inotify wakes a scan: the rest of a burst of events comes with it

Rewatch = Callable[[Iterable[str]], None]


async def wait_for_change(wake: asyncio.Event, longest: float) -> None:
    """Until inotify says something changed (then a moment more), or ``longest``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(longest):
            await wake.wait()
            await asyncio.sleep(SETTLE)
    wake.clear()


class Watcher:
    def __init__(
        self,
        config: WatchConfig,
        scan_interval: float,
        notifier: Notifier,
        families: ConfigFamilies,
        rewatch: Rewatch,
    ) -> None:
        self.config = config
        self.scan_interval = scan_interval
        self.notifier = notifier
        self.families = families
        self.rewatch = rewatch  # asks inotify to watch a scan's directories
        self.wake = asyncio.Event()  # set by inotify
        self.debounce = Debounce(config.wait.min, config.wait.max)
        self.applied: str | None = None  # the digest the app last knew (or started with)
        self._hasher = ContentHasher()
        self._seen = ""  # the digest of the last scan
        self._warned: set[str] = set()

    async def begin(self) -> None:
        """The first scan, before the component counts as started: the baseline."""
        name = self.config.name
        self.families.changes.labels(name)
        self.families.validation_failures.labels(name)
        self._seen = (await self.scan()).digest
        if self.applied is None:
            self.applied = self._seen  # the content the app started with
        elif self._seen != self.applied:  # taken over on a reload: seen, not yet notified
            self.debounce.change(asyncio.get_running_loop().time())

    async def run(self) -> None:
        """Scan until cancelled (after ``begin``)."""
        loop = asyncio.get_running_loop()
        seen = self._seen
        while True:
            due = self.debounce.due()
            wait = self.scan_interval if due is None else max(0.0, due - loop.time())
            await wait_for_change(self.wake, min(wait, self.scan_interval))
            digest = (await self.scan()).digest
            now = loop.time()
            if digest != seen:
                seen = digest
                self.debounce.change(now)
            if self.debounce.fire(now) and seen != self.applied and await self._apply():
                self.applied = seen

    async def scan(self) -> Snapshot:
        snapshot = await asyncio.to_thread(self._hasher.snapshot, self.config.paths)
        self.rewatch(snapshot.directories)
        for path in snapshot.missing:
            self._warn_once(path, "watched path does not exist; it counts as empty until "
                            "it appears")  # fmt: skip
        for problem in snapshot.unreadable:
            self._warn_once(problem, "cannot read a watched path; it is left out")
        return snapshot

    def _warn_once(self, problem: str, message: str) -> None:
        if problem not in self._warned:
            self._warned.add(problem)
            log.warning(message, extra={"watch": self.config.name, "path": problem})

    async def _apply(self) -> bool:
        """Validate the settled change and notify; False when validation refused it."""
        config = self.config
        self.families.changes.labels(config.name).inc()
        self.families.last_change.labels(config.name).set(time.time())
        if config.validate is not None:
            try:
                await validate(config.validate, config.validate_timeout)
            except ValidationFailed as exc:
                self.families.validation_failures.labels(config.name).inc()
                log.error("config change failed validation; the app is not notified",
                          extra={"watch": config.name, "error": str(exc),
                                 "output": exc.output})  # fmt: skip
                return False
        log.info("config changed; notifying the app",
                 extra={"watch": config.name, "notify": config.notify})  # fmt: skip
        for target in config.notify:
            self.notifier.notify(target)
        return True
