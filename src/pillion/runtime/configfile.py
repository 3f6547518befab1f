"""Pillion's own config file, watched: a change of its content reloads it, as SIGHUP does.

Mounted from a ConfigMap, the file is a symlink ``pillion.yaml -> ..data/pillion.yaml``
and the kubelet updates it by swapping ``..data`` at once; edited in place or renamed
over, it changes in its own directory. Either way inotify on those directories
(``pillion.watch``) wakes a look at the file's content; without inotify the look
happens every ``CHECK_INTERVAL`` anyway. The content is hashed: a touch, or a swap to
the same content, changes nothing. A change waits until the burst of events it came
with is over (``SETTLE_MIN``, at most ``SETTLE_MAX`` after the first), then the
supervisor reloads it as on SIGHUP, unless the content is what it read last (at
start, on SIGHUP or at the previous change).

A file that is gone or cannot be read is logged once, and the running config stays;
when it is back with a content other than the one running, that is loaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter

from pillion.configwatch.debounce import Debounce
from pillion.configwatch.watcher import wait_for_change
from pillion.telemetry import Metrics
from pillion.watch import ContentHasher, DirectoryWatch, Snapshot, WatchUnavailable

__all__ = ["CHECK_INTERVAL", "ConfigFileWatch"]

log = logging.getLogger("pillion.supervisor")

CHECK_INTERVAL = 2.0  # seconds between looks at the content when inotify says nothing
SETTLE_MIN = 1.0  # a change is reloaded once nothing more changed for this long...
SETTLE_MAX = 5.0  # ...or this long after it was first seen, if changes keep coming


class _Families:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "pillion_config_file_checks",
            "Looks at the config file's content by its watch (lifecycle.watch_config): "
            "on inotify events in its directory, and every 2s.",
            registry=registry,
        )


class ConfigFileWatch:
    """``await ConfigFileWatch(...).run()`` watches until cancelled or no longer ``enabled``."""

    def __init__(
        self,
        path: str,
        *,
        reload: Callable[[], Awaitable[object]],
        enabled: Callable[[], bool],
        metrics: Metrics,
    ) -> None:
        """``reload``: re-read the file, unless its content is what was read last."""
        self.path = path
        self.reload = reload
        self.enabled = enabled
        self.checks = metrics.family("config_file", _Families).checks
        self.wake = asyncio.Event()  # set by inotify
        self.debounce = Debounce(SETTLE_MIN, SETTLE_MAX)
        self._hasher = ContentHasher()
        self._inotify: DirectoryWatch | None = None
        self._problem: str | None = None  # why the file cannot be read, as last logged

    async def run(self) -> None:
        self._open_inotify()
        try:
            loop = asyncio.get_running_loop()
            # None at first: the first look is a change, checked against what the
            # supervisor read at start (the file may have changed since).
            seen: str | None = None
            log.debug("watching the config file",
                      extra={"path": self.path, "inotify": self._inotify is not None})  # fmt: skip
            while self.enabled():
                snapshot = await self._check()
                now = loop.time()
                if snapshot is None:  # gone or unreadable: nothing to load
                    seen = None
                    self.debounce.reset()
                elif snapshot.files == 0:
                    pass  # gone between its stat and its read: the next look tells
                elif snapshot.digest != seen:
                    if seen is not None:
                        log.debug("config file content changed; reloading once it settles",
                                  extra={"path": self.path})  # fmt: skip
                    seen = snapshot.digest
                    self.debounce.change(now)
                elif self.debounce.fire(now) and self.enabled():
                    await self.reload()
                due = self.debounce.due()
                wait = CHECK_INTERVAL if due is None else max(0.0, due - now)
                await wait_for_change(self.wake, min(wait, CHECK_INTERVAL))
            log.debug("no longer watching the config file", extra={"path": self.path})
        finally:
            self._close_inotify()

    async def _check(self) -> Snapshot | None:
        """The file's content now, or None (logged once) when it is gone or unreadable."""
        snapshot = await asyncio.to_thread(self._hasher.snapshot, [self.path])
        self.checks.inc()
        self._rewatch(snapshot.directories)
        problem = "not found" if snapshot.missing else next(iter(snapshot.unreadable), None)
        if problem != self._problem:
            if problem is not None:
                log.warning(
                    "config file cannot be read; the running config stays",
                    extra={"path": self.path, "error": problem},
                )
            else:
                log.info("config file is back", extra={"path": self.path})
            self._problem = problem
        return None if problem is not None else snapshot

    def _open_inotify(self) -> None:
        inotify = DirectoryWatch(self.wake.set)
        try:
            inotify.open(asyncio.get_running_loop())
        except WatchUnavailable as exc:
            inotify.close()
            self._polling(str(exc))
            return
        self._inotify = inotify

    def _rewatch(self, directories: Iterable[str]) -> None:
        if self._inotify is None:
            return
        try:
            self._inotify.watch(directories)
        except WatchUnavailable as exc:
            self._close_inotify()
            self._polling(str(exc))

    def _close_inotify(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def _polling(self, reason: str) -> None:
        log.warning(
            "inotify unavailable; the config file is checked every 2s",
            extra={"path": self.path, "error": reason},
        )
