"""The StatsD server as a component (the statsd_exporter role).

Samples from the app (UDP and TCP, loopback by default) go into a series store
that a collector serves on the status port's ``/metrics``. Idle series are
removed after ``ttl`` (at each scrape and on a timer, so memory is given back
without scrapes too).

Reloads: with the same addresses the component is reconfigured in place (new
rules and limits; the series are kept unless what the names map to changed).
With new addresses a replacement binds them while this one still runs, and
takes its store over when the rules did not change; while both live, only the
newest store is served, so no family ever appears twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Iterable

from pillion.components import Component, ComponentStartError, cancel_and_wait
from pillion.config import PillionConfig
from pillion.config.exporters import StatsdConfig
from pillion.config.types import ListenAddress
from pillion.exporters.statsd_exposition import StoreCollector
from pillion.exporters.statsd_ingest import StatsdIngest
from pillion.exporters.statsd_metrics import StatsdFamilies
from pillion.exporters.statsd_server import StatsdTcpProtocol, listen_tcp, listen_udp
from pillion.exporters.statsd_store import SeriesStore
from pillion.telemetry import Metrics

__all__ = ["StatsdComponent"]

log = logging.getLogger("pillion.exporters")


class StatsdComponent(Component):
    kind = "traffic"

    def __init__(self, config: StatsdConfig, metrics: Metrics, *, reserved: Iterable[str]) -> None:
        """``reserved``: the metric names the other exporters serve, which a StatsD
        metric never takes (``ExportersConfig.declared_metric_names()``)."""
        self.name = "statsd"
        self.config = config
        self.metrics = metrics
        self.families = metrics.family("statsd", StatsdFamilies)
        self.reserved = frozenset(reserved)
        self.store = self._new_store()
        self.ingest = StatsdIngest(self.config, self.store, self.families)
        self.collector = StoreCollector(self.store, self.families.is_exposed)
        self.udp_address: ListenAddress | None = None  # where bound, once started
        self.tcp_address: ListenAddress | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[StatsdTcpProtocol] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    def _new_store(self) -> SeriesStore:
        config = self.config
        return SeriesStore(ttl=config.rules().ttl,
                           max_series_per_metric=config.max_series_per_metric,
                           max_series=config.max_series, max_metrics=config.max_metrics,
                           reserved=self.reserved)  # fmt: skip

    @property
    def started(self) -> bool:
        return self._started

    def take_over(self, previous: Component) -> None:
        """Keep the series of the component this one replaces (new addresses), when
        its names map to the same metrics."""
        if isinstance(previous, StatsdComponent) and self._same_meaning(previous):
            self.store = previous.store
            self._apply_limits()
            self.ingest = StatsdIngest(self.config, self.store, self.families)
            self.collector = StoreCollector(self.store, self.families.is_exposed)

    async def start(self) -> None:
        udp, tcp = self.config.udp, self.config.tcp
        try:
            if udp is not None:
                self._udp, self.udp_address = await listen_udp(udp, self.ingest)
            if tcp is not None:
                self._tcp, self.tcp_address = await listen_tcp(tcp, self.ingest,
                                                               self._connections)  # fmt: skip
        except OSError as exc:
            failed = f"UDP {udp}" if self._udp is None else f"TCP {tcp}"
            await self._close_sockets()
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else (
                exc.strerror or str(exc))  # fmt: skip
            raise ComponentStartError("statsd", f"cannot listen on {failed}: {reason}") from exc
        self.metrics.add_section(self.collector)
        self.families.live.append(self.collector)
        self._tasks.append(asyncio.create_task(self._expire_idle()))
        self._started = True
        log.info(
            "statsd listening",
            extra={"udp": _text(self.udp_address), "tcp": _text(self.tcp_address)},
        )

    async def _expire_idle(self) -> None:
        while True:
            ttl = self.store.shortest_ttl()
            # a tenth of the ttl: a series outlives it by at most that much between scrapes;
            # summaries' quantile windows move at least every 30s without scrapes
            await asyncio.sleep(min(max(ttl / 10, 0.5), 30.0) if ttl > 0 else 30.0)
            self.families.expire(self.store)

    def can_reconfigure(self, config: PillionConfig) -> bool:
        new = config.exporters.statsd if config.exporters is not None else None
        return new is not None and (new.udp, new.tcp) == (self.config.udp, self.config.tcp)

    def reconfigure(self, config: PillionConfig) -> None:
        assert config.exporters is not None
        assert config.exporters.statsd is not None
        previous_config, previous_reserved = self.config, self.reserved
        self.config = config.exporters.statsd
        self.reserved = config.exporters.declared_metric_names()
        if not _same_rules(previous_config, self.config) or previous_reserved != self.reserved:
            # series mapped by the old rules would clash with the new ones
            self.store.clear()
            self.store.reserve(self.reserved)
        self._apply_limits()
        self.ingest.configure(self.config)

    def _same_meaning(self, previous: StatsdComponent) -> bool:
        return _same_rules(previous.config, self.config) and previous.reserved == self.reserved

    def _apply_limits(self) -> None:
        store, config = self.store, self.config
        store.ttl = config.rules().ttl
        store.max_series_per_metric = config.max_series_per_metric
        store.max_series = config.max_series
        store.max_metrics = config.max_metrics

    async def drain(self, deadline: float) -> None:
        # Nothing is in flight: every sample is recorded as it arrives. The sockets
        # stay open until close, so the app's last samples still count.
        _ = deadline

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self._close_sockets()
        self.metrics.remove_section(self.collector)
        with contextlib.suppress(ValueError):
            self.families.live.remove(self.collector)
        self._started = False

    async def _close_sockets(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for connection in list(self._connections):
                connection.abort()
            await self._tcp.wait_closed()
            self._tcp = None


def _same_rules(a: StatsdConfig, b: StatsdConfig) -> bool:
    """Whether the names map to the same metrics (a mapping file's rules included)."""
    return a.rules().mapping() == b.rules().mapping()


def _text(address: ListenAddress | None) -> str | None:
    return None if address is None else str(address)
