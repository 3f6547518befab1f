"""The status server (pod IP, default :15020): kubelet probes and ``/metrics``.

``/healthz/started`` passes once every component has started, ``/healthz/live``
while none has failed, ``/healthz/ready`` while all are ready and Pillion is not
draining. A failing probe answers 503 with a JSON body saying which component.
Every body lists, under each component, the ``problems`` it is working around
(a full disk, say), if any.
``/prestop`` (with its token) is the app containers' preStop hook.
"""

from __future__ import annotations

import hmac
import logging

from pillion.config import PillionConfig
from pillion.runtime.control import ComponentHealth, Control, Health
from pillion.runtime.http_server import HttpError, HttpServerComponent, Request, Response
from pillion.telemetry import Metrics

__all__ = ["StatusServer"]

log = logging.getLogger("pillion.status")


class StatusServer(HttpServerComponent):
    def __init__(self, config: PillionConfig, control: Control, metrics: Metrics) -> None:
        self._control = control
        self._metrics = metrics
        super().__init__("status", config.status.listen, config.status.max_request_size)

    def add_routes(self) -> None:
        self.route("GET", "/healthz/started", self._started)
        self.route("GET", "/healthz/live", self._live)
        self.route("GET", "/healthz/ready", self._ready)
        self.route("GET", "/metrics", self._scrape)
        self.route("GET", "/prestop", self._prestop)

    def can_reconfigure(self, config: PillionConfig) -> bool:
        return config.status.listen == self.listen

    def reconfigure(self, config: PillionConfig) -> None:
        self.max_request_size = config.status.max_request_size

    async def _started(self, request: Request) -> Response:
        health = self._control.health()
        return _probe(health, health.started, "started")

    async def _live(self, request: Request) -> Response:
        health = self._control.health()
        return _probe(health, health.live, "live")

    async def _ready(self, request: Request) -> Response:
        health = self._control.health()
        return _probe(health, health.ready, "ready")

    async def _prestop(self, request: Request) -> Response:
        """The app containers' preStop hook: inbound traffic stops, and the answer
        comes once its requests in flight are done; then the kubelet signals the app."""
        token = self._control.config.status.prestop_token
        if token is None:
            raise HttpError(404, "/prestop is off: no status.prestop_token\n")
        expected = f"Bearer {token.get_secret_value()}".encode()
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, expected):
            log.warning("preStop refused: missing or wrong token", extra={"peer": request.remote})
            raise HttpError(401, "/prestop needs Authorization: Bearer <token>\n")
        log.info("preStop: draining inbound traffic", extra={"peer": request.remote})
        await self._control.drain_inbound()
        return Response.json({"drained": True})

    async def _scrape(self, request: Request) -> Response:
        await self._metrics.before_scrape()
        body, content_type = self._metrics.exposition(request.headers.get("accept"))
        return Response(body, content_type=content_type)


def _probe(health: Health, passing: bool, what: str) -> Response:
    body = health.as_json()
    if not passing:
        body["failing"] = sorted(
            name for name, component in health.components.items() if _fails(component, what)
        )
    return Response.json(body, status=200 if passing else 503)


def _fails(component: ComponentHealth, what: str) -> bool:
    if what == "started":
        return not component.started
    if what == "ready":
        return not component.ready
    return component.state == "failed"
