"""The config section's templates: rendered from its local sources, again when a
source's content changes (noticed as the watches notice theirs: inotify, and a
hash at every scan), written atomically, the app told when a file changed.

A source is read again only when the digest of its content changed and the
change settled (``config.wait``); before every source has been read once, it is
read at once, so the first render holds the app back no longer than needed. A
source that cannot be read keeps its last values; a template that fails keeps
its previous file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from pillion.config.configwatch import ConfigWatchConfig
from pillion.config.secrets import SecretSourceConfig
from pillion.configwatch.debounce import Debounce
from pillion.configwatch.metrics import ConfigFamilies
from pillion.configwatch.watcher import Rewatch, wait_for_change
from pillion.notify import Notifier
from pillion.render.fileset import RenderedFiles
from pillion.render.sources import SourceError, read_source
from pillion.watch import ContentHasher

__all__ = ["TemplateRendering"]

log = logging.getLogger("pillion.config")


class TemplateRendering:
    def __init__(
        self,
        config: ConfigWatchConfig,
        notifier: Notifier,
        families: ConfigFamilies,
        environ: Mapping[str, str],
        rewatch: Rewatch,
    ) -> None:
        self.config = config
        self.notifier = notifier
        self.families = families
        self.environ = environ
        self.rewatch = rewatch
        self.wake = asyncio.Event()  # set by inotify
        self.debounce = Debounce(config.wait.min, config.wait.max)
        self.local = [s for s in config.sources if s.type != "env"]  # files: watched
        self.values: dict[str, dict[str, Any]] = {}  # by source, the last good values
        self.files = RenderedFiles(list(config.templates), "config", notifier.notify,
                                   families.renders, log)  # fmt: skip
        self._hashers = {s.name: ContentHasher() for s in self.local}
        self._seen: dict[str, str] = {}  # by source: the digest of its content
        self._read: dict[str, str] = {}  # by source: the digest when its values were read
        self._problems: dict[str, str] = {}  # by source: the error last logged
        self._rendered_once = False  # every source had values and templates were rendered

    @property
    def started(self) -> bool:
        return self.files.started

    def compile(self) -> None:
        """``RenderError`` for a template that does not compile or cannot be read."""
        self.files.compile()

    async def run(self) -> None:
        if not self.config.templates:
            return  # sources nothing uses
        for source in self.config.sources:
            if source.type == "env":  # read once: a process's environment does not change
                self.values[source.name] = read_source(source, self.environ)
        loop = asyncio.get_running_loop()
        while True:
            await self._scan(loop.time())
            due = self.debounce.due()
            wait = self.config.scan_interval if due is None else max(0.0, due - loop.time())
            await wait_for_change(self.wake, min(wait, self.config.scan_interval))

    async def _scan(self, now: float) -> None:
        directories: set[str] = set()
        for source in self.local:
            assert source.path is not None
            snapshot = await asyncio.to_thread(self._hashers[source.name].snapshot, [source.path])
            directories |= snapshot.directories
            if snapshot.digest != self._seen.get(source.name):
                self._seen[source.name] = snapshot.digest
                self.debounce.change(now)
        self.rewatch(directories)
        pending = [s for s in self.local if self._seen[s.name] != self._read.get(s.name)]
        never_read = any(s.name not in self.values for s in pending)
        changed = False
        if pending and (never_read or self.debounce.fire(now)):
            self.debounce.reset()
            changed = await self._read_sources(pending)
        complete = len(self.values) == len(self.config.sources)
        if complete and (changed or not self._rendered_once):
            self._rendered_once = True
            self.files.render_all(self.values)

    async def _read_sources(self, sources: list[SecretSourceConfig]) -> bool:
        """Read ``sources`` again; whether any one's values changed."""
        changed = False
        for source in sources:
            digest = self._seen[source.name]
            try:
                values = await asyncio.to_thread(read_source, source, self.environ)
            except SourceError as exc:
                if self._problems.get(source.name) != str(exc):
                    self._problems[source.name] = str(exc)
                    log.error("config source cannot be read; its last values are kept",
                              extra={"source": source.name, "error": str(exc)})  # fmt: skip
                continue
            self._problems.pop(source.name, None)
            self._read[source.name] = digest
            if self.values.get(source.name) != values:
                self.values[source.name] = values
                changed = True
        return changed
