"""An aiohttp server as a component: the base of the admin and status servers.

Binding errors become ``ComponentStartError`` naming the address. Requests with a
body above ``max_request_size`` get 413 before any handler runs; request lines
and header fields above 8 KiB get 400 from aiohttp's parser.

Draining stops the listener, then waits for the requests in flight to finish
(answering them with ``Connection: close``) before closing connections: aiohttp's
own shutdown stops reading at once, which would cut off a body still arriving.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from pillion.components import Component, ComponentStartError
from pillion.config.types import ListenAddress

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
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._log = logging.getLogger(f"pillion.{name}")

    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Add this server's routes (and middlewares) to ``app``."""

    @property
    def started(self) -> bool:
        return self.bound is not None

    async def start(self) -> None:
        app = web.Application(
            client_max_size=self.max_request_size, middlewares=[self._track, self._limit_body]
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
            raise ComponentStartError(
                self.name, f"cannot listen on {self.listen}: {reason}"
            ) from exc
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.bound = ListenAddress(host, port)
        self._log.info("listening", extra={"address": str(self.bound)})

    async def drain(self, deadline: float) -> None:
        runner = self._runner
        if runner is None:
            return
        self._draining = True
        for site in list(runner.sites):
            await site.stop()  # new connections are refused from here on
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # let requests already accepted reach their handlers
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - loop.time()))
        if self._in_flight:
            self._log.warning("drain deadline passed", extra={"in_flight": self._in_flight})
        server = runner.server
        if server is not None:
            server.pre_shutdown()  # close idle keep-alive connections
            await server.shutdown(max(0.0, deadline - loop.time()))

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        self.bound = None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._in_flight += 1
        self._idle.clear()
        try:
            response = await handler(request)
            if self._draining:
                response.force_close()
            return response
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    @web.middleware
    async def _limit_body(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > self.max_request_size:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_request_size, actual_size=length)
        return await handler(request)
