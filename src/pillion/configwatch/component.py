"""The config section as a component: render its templates, watch its files,
tell the app.

One inotify instance covers every watch and source: it only says that
something changed in some watched directory, and every watch and the
templates then hash their paths again (cheap: a file's content is read again
only when its stat changed). They hash every ``scan_interval`` anyway, which is
all there is when inotify is unavailable. ``started`` turns true once every
template has rendered once (at once when there are none), which holds a native
sidecar's app until its files exist.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sequence

from pillion.components import Component, ComponentStartError, cancel_and_wait
from pillion.config.configwatch import ConfigWatchConfig
from pillion.config.secrets import NotifyTargetConfig
from pillion.configwatch.metrics import ConfigFamilies
from pillion.configwatch.rendering import TemplateRendering
from pillion.configwatch.watcher import Watcher
from pillion.notify import Notifier
from pillion.render.errors import RenderError
from pillion.telemetry import Metrics
from pillion.watch import DirectoryWatch, WatchUnavailable

__all__ = ["ConfigWatchComponent"]

log = logging.getLogger("pillion.config")


class ConfigWatchComponent(Component):
    kind = "traffic"
    hold_until_started = True  # the files it renders exist before the rest starts

    def __init__(
        self,
        config: ConfigWatchConfig,
        metrics: Metrics,
        *,
        notify: Sequence[NotifyTargetConfig],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``notify``: the ``app.notify`` targets the watches and templates name."""
        self.name = "config"
        self.config = config
        self.notifier = Notifier(list(notify), metrics)
        self.families = metrics.family("config", ConfigFamilies)
        self.rendering = TemplateRendering(
            self.config,
            notifier=self.notifier,
            families=self.families,
            environ=dict(os.environ if environ is None else environ),
            rewatch=self._rewatch,
        )
        interval = self.config.scan_interval
        self.watchers = [
            Watcher(watch, interval, self.notifier, self.families, self._rewatch)
            for watch in self.config.watch
        ]
        self._inotify: DirectoryWatch | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def started(self) -> bool:
        return self.rendering.started

    async def wait_started(self) -> None:
        await self.rendering.files.wait_started()

    def take_over(self, previous: Component) -> None:
        """On a reload, keep what the app was last told about: a change the previous
        component saw but had not notified yet is notified by this one, and a
        template it rendered notifies when it changes now."""
        if not isinstance(previous, ConfigWatchComponent):
            return
        before = {w.config.name: w for w in previous.watchers}
        for watcher in self.watchers:
            old = before.get(watcher.config.name)
            if old is not None and old.config.paths == watcher.config.paths:
                watcher.applied = old.applied
        written = {(t.name, t.destination) for t in previous.config.templates
                   if t.name in previous.rendering.files.rendered}  # fmt: skip
        self.rendering.files.rendered = {t.name for t in self.config.templates
                                   if (t.name, t.destination) in written}  # fmt: skip

    async def start(self) -> None:
        try:
            self.rendering.compile()
        except RenderError as exc:
            raise ComponentStartError("config", str(exc)) from exc
        self._open_inotify()
        for watcher in self.watchers:
            await watcher.begin()
        for run in [self.rendering.run, *(watcher.run for watcher in self.watchers)]:
            task = asyncio.create_task(run())
            task.add_done_callback(_log_crash)
            self._tasks.append(task)

    async def drain(self, deadline: float) -> None:
        _ = deadline  # nothing in flight worth waiting for: files are written whole

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        await self.notifier.close()

    def _open_inotify(self) -> None:
        inotify = DirectoryWatch(self._changed)
        try:
            inotify.open(asyncio.get_running_loop())
        except WatchUnavailable as exc:
            inotify.close()
            self._polling(str(exc))
            return
        self._inotify = inotify

    def _changed(self) -> None:
        self.rendering.wake.set()
        for watcher in self.watchers:
            watcher.wake.set()

    def _rewatch(self, directories: Iterable[str]) -> None:
        if self._inotify is None:
            return
        try:
            self._inotify.watch(directories)
        except WatchUnavailable as exc:
            self._inotify.close()
            self._inotify = None
            self._polling(str(exc))

    def _polling(self, reason: str) -> None:
        log.warning(
            "inotify unavailable; config files are hashed every scan_interval",
            extra={"error": reason, "scan_interval": self.config.scan_interval},
        )


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("config watching stopped", exc_info=task.exception())
