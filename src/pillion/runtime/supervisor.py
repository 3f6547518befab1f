"""The supervisor: builds components from the config and runs their lifecycle.

It starts components in order and stops at the first that fails (exit 1), feeds
the probes from their states, drains on SIGTERM / SIGINT / ``POST /quitquitquit``
(traffic components first in reverse start order, then admin, then status, all
by one deadline: ``lifecycle.drain_timeout``), and reloads on SIGHUP, or when the
file's content changes (``lifecycle.watch_config``, ``runtime.configfile``): the
new file is validated and applied, or the error is logged and the old config keeps
running. A second SIGTERM / SIGINT cuts the drain short.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Mapping
from typing import Any

from pillion.components import EXIT_OK, EXIT_RUNTIME_FAILURE, Component, ComponentStartError
from pillion.config import (
    ConfigError,
    ConfigIssue,
    PillionConfig,
    parse_config_file,
    read_config_file,
)
from pillion.config.models import FEATURES
from pillion.runtime.builders import Builder, build_components
from pillion.runtime.configfile import ConfigFileWatch
from pillion.runtime.control import ComponentHealth, Health
from pillion.telemetry import Metrics, set_level

__all__ = ["Supervisor"]

log = logging.getLogger("pillion.supervisor")

EXIT_FILE_INTERVAL = 0.5  # seconds between looks for lifecycle.exit_file
RELOAD_SWITCH_INTERVAL = 0.0005  # seconds: the GIL's hand-over while a reload parses


class Supervisor:
    """Runs one Pillion: ``await Supervisor(config, path).run()`` returns the exit code."""

    def __init__(
        self,
        config: PillionConfig,
        config_path: str | None = None,
        *,
        metrics: Metrics | None = None,
        build: Builder = build_components,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._config = config
        self._config_path = config_path
        self._environ = environ
        self._build = build
        self.metrics = metrics or Metrics()
        self.components: list[Component] = []
        self._states: dict[Component, str] = {}
        self._draining = False
        self._exit = asyncio.Event()
        self._hurry = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._drained: set[Component] = set()
        self._traffic_drain: asyncio.Task[None] | None = None
        self._read_digest: str | None = None  # sha256 of the config file as last read
        self._config_watch: asyncio.Task[None] | None = None
        self._serving = False  # run() got past the start: a watch of the file may run

    # -- what the admin and status servers see (runtime.control.Control) --

    @property
    def config(self) -> PillionConfig:
        return self._config

    def health(self) -> Health:
        components = {
            c.name: ComponentHealth(
                self._states.get(c, "starting"), c.started, c.ready, tuple(c.problems)
            )
            for c in self.components
        }
        started = bool(components) and all(
            c.started and c.state != "starting" for c in components.values()
        )
        live = not any(c.state == "failed" for c in components.values())
        ready = (
            started and live and not self._draining and all(c.ready for c in components.values())
        )
        return Health(started, live, ready, self._draining, components)

    def begin_drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        log.info("draining: readiness now fails")
        self._traffic_drain = self._spawn(self._drain_traffic(self._deadline()))

    async def drain_inbound(self) -> None:
        """The app is about to be stopped (its preStop hook): readiness fails, the
        inbound listeners close, and this returns once their requests in flight are
        done (or at the deadline). Outbound listeners stay, for the app's last calls,
        until Pillion itself is stopped."""
        if not self._draining:
            self._draining = True
            log.info("draining inbound traffic before the app stops; readiness now fails")
        deadline = self._deadline()
        await asyncio.gather(
            *(
                component.drain_inbound(deadline)
                for component in self.components
                if component.kind == "traffic" and component in self._states
            )
        )

    def request_exit(self) -> None:
        if self._exit.is_set():
            self._hurry.set()
            log.warning("second stop request: cutting the drain short")
            return
        self._exit.set()

    # -- lifecycle --

    async def run(self) -> int:
        """Start everything, serve until asked to stop, drain, and return the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        self._report_deprecations(self._config)
        if self._config_path is not None:
            # What the config was loaded from, about: the watch of the file reloads
            # only a content other than this one.
            with contextlib.suppress(ConfigError):
                data = await asyncio.to_thread(read_config_file, self._config_path)
                self._read_digest = _digest(data)
        try:
            try:
                await self.start()
            except ComponentStartError as exc:
                _logger_of(exc.component).error("cannot start", extra={"error": exc.reason})
                await self._stop_all(self._deadline())
                return EXIT_RUNTIME_FAILURE
            log.info("started", extra={"components": [c.name for c in self.components]})
            # What start-up made (modules, config models, compiled routes) lives as long
            # as the process: out of the collector's sight, full collections stop
            # walking it again and again under load.
            gc.freeze()
            self._spawn(self._watch_exit_file())
            self._serving = True
            self._watch_config_file()
            await self._exit.wait()
            log.info(
                "stopping", extra={"drain_timeout_seconds": self._config.lifecycle.drain_timeout}
            )
            await self._stop_all(self._deadline())
            log.info("stopped")
            return EXIT_OK
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                # Exiting now: a late signal must not kill the process and turn a
                # clean drain (exit 0) into a death by signal. The loop removes these
                # handlers when it closes; ``run_sidecar`` then ignores the signals.
                loop.add_signal_handler(signum, _ignore)
            for task in list(self._tasks):
                task.cancel()

    async def start(self) -> None:
        """Build and start the components in order; raise at the first failure. After
        a component that holds the rest (``hold_until_started``), wait for it to be
        started, or for a stop signal (then the rest never start)."""
        self.components = self._build(self._config, self, self.metrics)
        for component in self.components:
            await self._start_one(component)
            if component.hold_until_started and not component.started:
                log.info("waiting for a component before starting the rest",
                         extra={"waiting_for": component.name})  # fmt: skip
                started = asyncio.ensure_future(component.wait_started())
                stop = asyncio.ensure_future(self._exit.wait())
                await asyncio.wait({started, stop}, return_when=asyncio.FIRST_COMPLETED)
                started.cancel()
                stop.cancel()
                if self._exit.is_set():
                    return

    async def reload(self, *, only_if_changed: bool = False) -> bool:
        """Re-read the config file and apply it; on any error keep the old config.

        ``only_if_changed`` (the watch of the file): nothing is done, and False is
        returned, when the content is the one read last (at start, on SIGHUP or at the
        previous change), or when the file is gone (the watch logs that).
        """
        async with self._reload_lock:
            path = self._config_path
            if path is None:
                if only_if_changed:
                    return False
                log.error("reload requested but there is no config file to re-read")
                self.metrics.record_reload(ok=False)
                return False
            if not only_if_changed:
                log.info("config reload requested", extra={"source": path})
            try:
                data = await asyncio.to_thread(read_config_file, path)
            except ConfigError as exc:
                if only_if_changed and isinstance(exc.__cause__, FileNotFoundError):
                    return False
                if only_if_changed:
                    log.info("config file changed, reloading", extra={"path": path})
                self._read_digest = None
                return self._refused(exc)
            digest = _digest(data)
            if only_if_changed:
                if digest == self._read_digest:
                    log.debug("config file content already read; nothing to reload",
                              extra={"path": path})  # fmt: skip
                    return False
                log.info("config file changed, reloading", extra={"path": path})
            self._read_digest = digest
            try:
                config = await self._parse_config(data, path)
                _refuse_silent_turn_off(self._config, config, path)
                if self._draining:  # stopping: nothing new starts
                    raise _Stopping
                await self._apply(config)
            except _Stopping:
                log.info("config reload dropped: stopping", extra={"source": path})
                return False
            except ConfigError as exc:
                return self._refused(exc)
            except ComponentStartError as exc:
                _logger_of(exc.component).error(
                    "config reload failed; the previous config keeps running",
                    extra={"error": exc.reason},
                )
                self.metrics.record_reload(ok=False)
                return False
            self.metrics.record_reload(ok=True)
            log.info("config reloaded", extra={"source": path})
            self._report_deprecations(config)
            self._watch_config_file()
            return True

    def _report_deprecations(self, config: PillionConfig) -> None:
        """Log and count the renamed keys ``config`` still used."""
        for note in config.deprecations:
            log.warning("deprecated config key", extra={"key": note.path, "line": note.line,
                                                         "detail": note.message})  # fmt: skip
            self.metrics.config_deprecations.labels(note.path).inc()

    def _refused(self, exc: ConfigError) -> bool:
        log.error(
            "config reload refused; the previous config keeps running",
            extra={"source": exc.source, "errors": [str(i) for i in exc.issues]},
        )
        self.metrics.record_reload(ok=False)
        return False

    async def _parse_config(self, data: bytes, path: str) -> PillionConfig:
        """Parse and validate off the event loop: traffic goes on meanwhile.

        The parsing thread shares the GIL with the loop: a short switch interval while
        it runs hands the GIL back often, and the cyclic collector waits (a collection
        among the parse's new objects would hold the GIL for milliseconds). The file
        is capped in size (``MAX_FILE_SIZE``), so this lasts well under a second.
        """
        environ = os.environ if self._environ is None else self._environ
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, RELOAD_SWITCH_INTERVAL))
        collecting = gc.isenabled()
        gc.disable()  # a full collection amid the parse's new objects holds the GIL long
        try:
            return await asyncio.to_thread(parse_config_file, data, path, environ)
        finally:
            sys.setswitchinterval(interval)
            if collecting:
                gc.enable()

    def _watch_config_file(self) -> None:
        """Start the watch of the config file if the running config wants it and none
        runs (one turned off by a reload ends by itself: it may be reloading now)."""
        if self._config_path is None or not self._serving or not self._watching_config_file():
            return
        if self._config_watch is None or self._config_watch.done():
            watch = ConfigFileWatch(
                self._config_path,
                reload=lambda: self.reload(only_if_changed=True),
                enabled=self._watching_config_file,
                metrics=self.metrics,
            )
            self._config_watch = self._spawn(watch.run())

    def _watching_config_file(self) -> bool:
        return (
            self._config.lifecycle.watch_config and not self._draining and not self._exit.is_set()
        )

    async def _apply(self, config: PillionConfig) -> None:
        """Move to ``config``: reconfigure in place where possible, else replace.

        Replacements start before anything changes; if one fails, the ones already
        started are closed and the old components stay as they were.
        """
        current = {c.name: c for c in self.components}
        wanted = self._build(config, self, self.metrics)
        in_place = [
            current[c.name]
            for c in wanted
            if c.name in current and current[c.name].can_reconfigure(config)
        ]
        kept = {c.name for c in in_place}
        fresh = [c for c in wanted if c.name not in kept]
        started: list[Component] = []
        try:
            for component in fresh:
                if component.name in current:
                    component.take_over(current[component.name])
                await component.start()
                started.append(component)
        except ComponentStartError:
            for component in reversed(started):
                await component.close()
            raise
        if self._draining:  # a stop came while they started: the old ones are drained
            for component in reversed(started):
                await component.close()
            raise _Stopping
        for component in in_place:
            component.reconfigure(config)
        retired = [c for name, c in current.items() if name not in kept]
        self._config = config
        self.components = [current[c.name] if c.name in kept else c for c in wanted]
        for component in fresh:
            self._set_state(component, "draining" if self._draining else "running")
        set_level(config.telemetry.log_level)
        deadline = self._deadline()
        for component in reversed(retired):
            await self._stop_one(component, deadline)

    async def _start_one(self, component: Component) -> None:
        self._set_state(component, "starting")
        try:
            await component.start()
        except ComponentStartError:
            self._set_state(component, "failed")
            raise
        self._set_state(component, "running")

    async def _drain_traffic(self, deadline: float) -> None:
        for component in reversed(self.components):
            if component.kind == "traffic":
                await self._drain_one(component, deadline)

    async def _stop_all(self, deadline: float) -> None:
        self._draining = True  # a reload under way sees it and drops what it started
        if self._traffic_drain is not None:
            await asyncio.wait({self._traffic_drain})
        order = [c for c in reversed(self.components) if c.kind == "traffic"]
        order += [c for c in reversed(self.components) if c.kind == "control"]
        for component in order:
            await self._stop_one(component, deadline)

    async def _stop_one(self, component: Component, deadline: float) -> None:
        if component not in self._states:
            return  # never started: an earlier component failed first
        await self._drain_one(component, deadline)
        await component.close()
        if self._states.get(component) != "failed":
            self._set_state(component, "stopped")

    async def _drain_one(self, component: Component, deadline: float) -> None:
        """Drain ``component`` once, until it is done, the deadline, or a second signal."""
        if component in self._drained or self._states.get(component) != "running":
            return
        self._drained.add(component)
        self._set_state(component, "draining")
        loop = asyncio.get_running_loop()
        drain = asyncio.ensure_future(component.drain(deadline))
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            # A little past the deadline: the component is meant to give up by itself.
            await asyncio.wait(
                {drain, hurry},
                timeout=max(0.0, deadline - loop.time()) + 1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            hurry.cancel()
        if not drain.done():
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
            _logger_of(component.name).warning("drain cut short")
        elif not drain.cancelled() and drain.exception() is not None:
            _logger_of(component.name).error("drain failed", exc_info=drain.exception())

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self._config.lifecycle.drain_timeout

    def _set_state(self, component: Component, state: str) -> None:
        self._states[component] = state
        if any(c is component for c in self.components):  # not for a retired one
            self.metrics.set_component_state(component.name, state)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watch_exit_file(self) -> None:
        """``lifecycle.exit_file``: once it exists, the app is done; drain and exit."""
        while not self._exit.is_set():
            path = self._config.lifecycle.exit_file
            # a stat on a local volume, twice a second: not worth a thread
            if path is not None and os.path.exists(path):  # noqa: ASYNC240
                log.info("exit file found: the app has finished", extra={"path": path})
                self.request_exit()
                return
            await asyncio.sleep(EXIT_FILE_INTERVAL)

    def _on_stop_signal(self, signum: int) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        self.request_exit()

    def _on_reload_signal(self) -> None:
        log.info("signal received", extra={"signal": "SIGHUP"})
        self._spawn(self.reload())


class _Stopping(Exception):
    """A reload met a stop: it is dropped, and what it started is closed."""


def _refuse_silent_turn_off(old: PillionConfig, new: PillionConfig, source: str) -> None:
    """A feature that runs is stopped by a reload only if the file says so (``proxy: null``)."""
    issues = [
        ConfigIssue(
            name,
            f"the running {name} section is absent from the new file; a reload turns a "
            f"feature off only when the file says so: write `{name}: null` (a file being "
            "written or cut short must not close what serves traffic)",
        )
        for name in FEATURES
        if getattr(old, name) is not None
        and getattr(new, name) is None
        and name not in new.turned_off
    ]
    if issues:
        raise ConfigError(source, issues)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _logger_of(component: str) -> logging.Logger:
    """Records about a component carry its name as their ``component``."""
    return logging.getLogger(f"pillion.{component}")


def _ignore() -> None:
    """A signal handler for a process that is already on its way out."""
