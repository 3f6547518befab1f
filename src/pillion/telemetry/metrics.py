"""The metrics registry of one Pillion process and Pillion's own process metrics.

One ``Metrics`` per supervisor (not a global registry), so several can live in
one test process. Exposition goes through ``prometheus_client``: the text format
by default, OpenMetrics when the scraper's ``Accept`` header asks for it; large
parts of the page (an exporter's series) may write themselves in the format it
chose (``page.PageSection``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import platform
import shutil
import tempfile
import time
import typing
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from pillion import __version__
from pillion.telemetry.page import PageSection, page_format

log = logging.getLogger("pillion.metrics")

__all__ = ["COMPONENT_STATES", "Metrics"]

COMPONENT_STATES = ["starting", "running", "draining", "stopped", "failed"]
RELOAD_RESULTS = ("success", "error")
_T = TypeVar("_T")


class Metrics:
    """Pillion's registry, with the process-level metrics already registered."""

    def __init__(self, *, process: bool = True) -> None:
        """``process=False``: only families registered through ``family`` (a worker's)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._families: dict[str, object] = {}
        self._scrape_hooks: list[Callable[[], Awaitable[None]]] = []
        self._sections: list[PageSection] = []
        self._multiprocess_dir: str | None = None
        if process:
            self._process_metrics()

    def _process_metrics(self) -> None:
        ProcessCollector(namespace="pillion", registry=self.registry)
        Info(
            "pillion_build",
            "Pillion's version and the Python it runs on (value is always 1).",
            registry=self.registry,
        ).info({"version": __version__, "python": platform.python_version()})
        Gauge(
            "pillion_start_time_seconds",
            "When this Pillion process started, in seconds since the Unix epoch.",
            registry=self.registry,
        ).set(time.time())
        self.component_state = Gauge(
            "pillion_component_state",
            "1 for the state each Pillion component is in, 0 for the others.",
            ["component", "state"],
            registry=self.registry,
        )
        self.config_reloads = Counter(
            "pillion_config_reloads",
            "Configuration reloads (SIGHUP, or a change of the file), by result.",
            ["result"],
            registry=self.registry,
        )
        for result in RELOAD_RESULTS:
            self.config_reloads.labels(result)
        self.config_deprecations = Counter(
            "pillion_config_deprecations",
            "Renamed keys a loaded config still used (read under their new names), by "
            "the old key; each load counts its own.",
            ["key"],
            registry=self.registry,
        )
        self.config_last_reload_successful = Gauge(
            "pillion_config_last_reload_successful",
            "1 if the last configuration reload succeeded (or none was tried), else 0.",
            registry=self.registry,
        )
        self.config_last_reload_successful.set(1)
        self.config_loaded_timestamp = Gauge(
            "pillion_config_last_load_timestamp_seconds",
            "When the running configuration was loaded, in seconds since the Unix epoch.",
            registry=self.registry,
        )
        self.config_loaded_timestamp.set(time.time())

    def multiprocess_dir(self) -> str:
        """A directory where worker processes write their metrics, merged into ours.

        Workers get it as ``PROMETHEUS_MULTIPROC_DIR``; ``prometheus_client`` sums
        their counters and histograms (and live gauges) into this registry's scrape.
        """
        if self._multiprocess_dir is None:
            directory = tempfile.mkdtemp(prefix="pillion-metrics-")
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
            self._multiprocess_dir = directory
        return self._multiprocess_dir

    def worker_exited(self, pid: int) -> None:
        """Drop a dead worker's live gauges (its counters keep counting in the sum)."""
        if self._multiprocess_dir is not None:
            mark_process_dead(pid, self._multiprocess_dir)  # type: ignore[no-untyped-call]

    def family(self, key: str, create: Callable[[CollectorRegistry], _T]) -> _T:
        """Metric families shared by every instance of a component, registered once.

        A component rebuilt by a reload gets the same families back instead of
        registering its names a second time.
        """
        found = self._families.get(key)
        if found is None:
            found = self._families[key] = create(self.registry)
        return typing.cast(_T, found)

    def set_component_state(self, component: str, state: str) -> None:
        for name in COMPONENT_STATES:
            self.component_state.labels(component, name).set(1 if name == state else 0)

    def record_reload(self, *, ok: bool) -> None:
        self.config_reloads.labels("success" if ok else "error").inc()
        self.config_last_reload_successful.set(1 if ok else 0)
        if ok:
            self.config_loaded_timestamp.set(time.time())

    def add_collector(self, collector: Collector) -> None:
        """Serve ``collector``'s families (give it an empty ``describe()`` so that a
        replacement built by a reload can be added before it is removed)."""
        self.registry.register(collector)

    def remove_collector(self, collector: Collector) -> None:
        with contextlib.suppress(KeyError):  # never added: a start that failed early
            self.registry.unregister(collector)

    def add_section(self, section: PageSection) -> None:
        """Add what ``section`` writes to every page, after the registry's families."""
        self._sections.append(section)

    def remove_section(self, section: PageSection) -> None:
        if section in self._sections:
            self._sections.remove(section)

    def add_scrape_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` before each scrape (an exporter fetching what it exposes)."""
        self._scrape_hooks.append(hook)

    def remove_scrape_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        if hook in self._scrape_hooks:
            self._scrape_hooks.remove(hook)

    async def before_scrape(self) -> None:
        """Run the scrape hooks concurrently; each bounds its own time and handles its
        own errors (one failing never stops the scrape)."""
        if self._scrape_hooks:
            outcomes = await asyncio.gather(*(hook() for hook in self._scrape_hooks),
                                            return_exceptions=True)  # fmt: skip
            for outcome in outcomes:
                if isinstance(outcome, Exception):  # a bug: the hooks handle what they expect
                    log.error("scrape hook failed", exc_info=outcome)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The body and content type for a scrape with this ``Accept`` header."""
        encoder, content_type = choose_encoder(accept or "")
        body = encoder(self.registry)
        if not self._sections:
            return body, content_type
        page = page_format(encoder)
        parts = [section.expose(page) for section in self._sections]
        if page.openmetrics and body.endswith(b"# EOF\n"):
            return b"".join([body[: -len(b"# EOF\n")], *parts, b"# EOF\n"]), content_type
        return b"".join([body, *parts]), content_type
