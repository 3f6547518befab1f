"""``app.health``: poll the app's own health path and fold it into ``/healthz/ready``.

``started`` does not wait for the app: with a native sidecar the app starts only
after Pillion has started, so waiting here would deadlock the pod. ``ready``
follows the last poll: 2xx within the timeout is healthy, anything else is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from pillion.components import Component
from pillion.config import PillionConfig

__all__ = ["AppHealth"]

log = logging.getLogger("pillion.app")

POLL_INTERVAL = 1.0
POLL_TIMEOUT = 1.0


class AppHealth(Component):
    kind = "control"

    def __init__(self, config: PillionConfig) -> None:
        assert config.app.health is not None
        self.name = "app"
        self._target = (config.app.host, config.app.port, config.app.health)
        host = f"[{config.app.host}]" if ":" in config.app.host else config.app.host
        self.url = f"http://{host}:{config.app.port}{config.app.health}"
        self._healthy = False
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def ready(self) -> bool:
        return self._healthy

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=POLL_TIMEOUT), auto_decompress=False
        )
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        assert self._session is not None
        while True:
            healthy, detail = await self._check(self._session)
            if healthy != self._healthy:
                log.info(
                    "app is healthy" if healthy else "app is not healthy",
                    extra={"url": self.url, "detail": detail},
                )
                self._healthy = healthy
            await asyncio.sleep(POLL_INTERVAL)

    async def _check(self, session: aiohttp.ClientSession) -> tuple[bool, str]:
        try:
            async with session.get(self.url, allow_redirects=False) as response:
                await response.read()
                return 200 <= response.status < 300, f"status {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return False, type(exc).__name__

    async def drain(self, deadline: float) -> None:
        await self.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def can_reconfigure(self, config: PillionConfig) -> bool:
        app = config.app
        return (app.host, app.port, app.health) == self._target

    def reconfigure(self, config: PillionConfig) -> None:
        """Nothing changes: only called when the target is the same."""
