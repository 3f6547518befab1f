"""What the exporters that fetch before a scrape share: an HTTP session, a
collector served on ``/metrics``, a scrape hook, and their start and close."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.registry import Collector

from pillion.components import Component, cancel_and_wait
from pillion.telemetry import Metrics

__all__ = ["ScrapingComponent"]


class ScrapingComponent(Component):
    kind = "traffic"

    def __init__(self, name: str, metrics: Metrics, collector: Collector) -> None:
        self.name = name
        self.metrics = metrics
        self.collector = collector
        self.session: aiohttp.ClientSession | None = None
        self.tasks: list[asyncio.Task[None]] = []  # background fetches, ended at close
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    async def before_scrape(self) -> None:
        """Fetch what the next scrape serves."""
        raise NotImplementedError

    def start_tasks(self) -> None:
        """Start background work once the session exists (default: none)."""

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(trust_env=False)
        self.metrics.add_collector(self.collector)
        self.metrics.add_scrape_hook(self.before_scrape)
        self.start_tasks()
        self._started = True

    async def drain(self, deadline: float) -> None:
        _ = deadline  # nothing in flight worth waiting for

    async def close(self) -> None:
        self.metrics.remove_scrape_hook(self.before_scrape)
        self.metrics.remove_collector(self.collector)
        await cancel_and_wait(self.tasks)
        self.tasks = []
        if self.session is not None:
            await self.session.close()
            self.session = None
        self._started = False
