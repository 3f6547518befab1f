"""The status server (pod IP, default :15020): kubelet probes and ``/metrics``.

``/healthz/started`` passes once every component has started, ``/healthz/live``
while none has failed, ``/healthz/ready`` while all are ready and Pillion is not
draining. A failing probe answers 503 with a JSON body saying which component.
``/prestop`` (with its token) is the app containers' preStop hook.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from pillion.config import PillionConfig
from pillion.runtime.control import ComponentHealth, Control, Health
from pillion.runtime.http_server import HttpServerComponent
from pillion.telemetry import Metrics

__all__ = ["StatusServer"]

log = logging.getLogger("pillion.status")


class StatusServer(HttpServerComponent):
    def __init__(self, config: PillionConfig, control: Control, metrics: Metrics) -> None:
        super().__init__("status", config.status.listen, config.status.max_request_size)
        self._control = control
        self._metrics = metrics

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/healthz/started", self._started)
        app.router.add_get("/healthz/live", self._live)
        app.router.add_get("/healthz/ready", self._ready)
        app.router.add_get("/metrics", self._scrape)
        app.router.add_get("/prestop", self._prestop)

    def can_reconfigure(self, config: PillionConfig) -> bool:
        return config.status.listen == self.listen

    def reconfigure(self, config: PillionConfig) -> None:
        self.max_request_size = config.status.max_request_size

    async def _started(self, request: web.Request) -> web.Response:
        health = self._control.health()
        return _probe(health, health.started, "started")

    async def _live(self, request: web.Request) -> web.Response:
        health = self._control.health()
        return _probe(health, health.live, "live")

    async def _ready(self, request: web.Request) -> web.Response:
        health = self._control.health()
        return _probe(health, health.ready, "ready")

    async def _prestop(self, request: web.Request) -> web.Response:
        """The app containers' preStop hook: inbound traffic stops, and the answer
        comes once its requests in flight are done; then the kubelet signals the app."""
        token = self._control.config.status.prestop_token
        if token is None:
            raise web.HTTPNotFound(text="/prestop is off: no status.prestop_token\n")
        expected = f"Bearer {token.get_secret_value()}".encode()
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            log.warning("preStop refused: missing or wrong token", extra={"peer": request.remote})
            raise web.HTTPUnauthorized(text="/prestop needs Authorization: Bearer <token>\n")
        log.info("preStop: draining inbound traffic", extra={"peer": request.remote})
        await self._control.drain_inbound()
        return web.json_response({"drained": True})

    async def _scrape(self, request: web.Request) -> web.Response:
        await self._metrics.before_scrape()
        body, content_type = self._metrics.exposition(request.headers.get("Accept"))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response


def _probe(health: Health, passing: bool, what: str) -> web.Response:
    body = health.as_json()
    if not passing:
        body["failing"] = sorted(
            name for name, component in health.components.items() if _fails(component, what)
        )
    return web.json_response(body, status=200 if passing else 503)


def _fails(component: ComponentHealth, what: str) -> bool:
    if what == "started":
        return not component.started
    if what == "ready":
        return not component.ready
    return component.state == "failed"
