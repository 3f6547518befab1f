"""An aiohttp server as a component: the base of the admin and status servers.

Binding errors become ``ComponentStartError`` naming the address. Requests with a
body above ``max_request_size`` get 413 before any handler runs; request lines
and header fields above 8 KiB get 400 from aiohttp's parser.
"""

from __future__ import annotations

import abc
import asyncio
import errno
import logging

from aiohttp import web

from pillion.config.types import ListenAddress
from pillion.runtime.component import Component
from pillion.runtime.errors import ComponentStartError

__all__ = ["HttpServerComponent"]

_MAX_HEADER_LINE = 8190  # aiohttp's and nginx's default large_client_header_buffers line


class HttpServerComponent(Component):
    """A component that serves an aiohttp ``Application`` on one address."""

    kind = "control"

    def __init__(self, name: str, listen: ListenAddress, max_request_size: int) -> None:
        self.name = name
        self.listen = listen
        self.max_request_size = max_request_size
        self.bound: ListenAddress | None = None
        self._runner: web.AppRunner | None = None
        self._log = logging.getLogger(f"pillion.{name}")

    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Add this server's routes (and middlewares) to ``app``."""

    @property
    def started(self) -> bool:
        return self.bound is not None

    async def start(self) -> None:
        app = web.Application(
            client_max_size=self.max_request_size, middlewares=[self._limit_body]
        )
        self.add_routes(app)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            max_line_size=_MAX_HEADER_LINE,
            max_field_size=_MAX_HEADER_LINE,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.listen.host, self.listen.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = (
                "address already in use"
                if exc.errno == errno.EADDRINUSE
                else (exc.strerror or str(exc))
            )
            raise ComponentStartError(self.name, f"cannot listen on {self.listen}: {reason}") from exc
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.bound = ListenAddress(host, port)
        self._log.info("listening", extra={"address": str(self.bound)})

    async def drain(self, deadline: float) -> None:
        runner = self._runner
        if runner is None:
            return
        for site in list(runner.sites):
            await site.stop()  # new connections are refused from here on
        server = runner.server
        if server is None:
            return
        await asyncio.sleep(0)  # let requests that were accepted reach their handlers
        server.pre_shutdown()  # close idle keep-alive connections
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        await server.shutdown(timeout)  # wait for in-flight handlers, then cancel them

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        self.bound = None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _limit_body(self, request: web.Request, handler: web.Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > self.max_request_size:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.max_request_size, actual_size=length
            )
        return await handler(request)
