"""The admin server (loopback, default 127.0.0.1:15000): look inside and steer.

``GET /config`` (secrets as ``***``), ``POST /drain``, ``POST /quitquitquit``,
``GET|POST /logging``, ``GET /`` (the live dashboard) and ``GET /stats`` (its data as
JSON, from ``dashboard.StatsSampler``). Because these endpoints can stop the sidecar,
a loopback admin server also refuses requests whose ``Host`` is not a loopback
name (DNS rebinding) and POSTs from a non-loopback browser ``Origin``; with
``admin.auth_token`` set every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from urllib.parse import urlsplit

import orjson

from pillion.components import Component
from pillion.config import PillionConfig
from pillion.config.types import is_loopback
from pillion.runtime.control import Control
from pillion.runtime.dashboard import StatsSampler, sampling_interval
from pillion.runtime.dashboard_page import ASSETS, asset, index_page
from pillion.runtime.http_server import HttpError, HttpServerComponent, Request, Response
from pillion.telemetry import Metrics, current_level, set_level
from pillion.telemetry.logs import levels

__all__ = ["ENDPOINTS", "AdminServer"]

log = logging.getLogger("pillion.admin")

ENDPOINTS: list[tuple[str, str, str]] = [
    ("GET", "/", "the live dashboard"),
    ("GET", "/stats", "the dashboard's data as JSON: traffic history, clusters, logs, errors"),
    ("GET", "/config", "the effective configuration as JSON, secrets shown as ***"),
    ("POST", "/drain", "stop taking new traffic (readiness fails), keep running"),
    ("POST", "/quitquitquit", "drain, then exit 0 (for Jobs)"),
    ("GET", "/logging", "the current log level"),
    ("POST", "/logging?level=debug", "change the log level (debug, info, warning, error)"),
]


class AdminServer(HttpServerComponent):
    def __init__(self, config: PillionConfig, control: Control, metrics: Metrics) -> None:
        self._control = control
        self._settings = config.admin
        self.sampler = StatsSampler(metrics, interval=sampling_interval(os.environ))
        super().__init__("admin", config.admin.listen, config.admin.max_request_size)

    def add_routes(self) -> None:
        self.route("GET", "/", self._index)
        self.route("GET", "/stats", self._stats)
        for path in ASSETS:
            self.route("GET", path, self._asset)
        self.route("GET", "/config", self._config)
        self.route("POST", "/drain", self._drain)
        self.route("POST", "/quitquitquit", self._quit)
        self.route("GET", "/logging", self._get_logging)
        self.route("POST", "/logging", self._set_logging)

    def can_reconfigure(self, config: PillionConfig) -> bool:
        return config.admin.listen == self.listen

    def reconfigure(self, config: PillionConfig) -> None:
        self._settings = config.admin
        self.max_request_size = config.admin.max_request_size

    def take_over(self, previous: Component) -> None:
        if isinstance(previous, AdminServer):
            self.sampler.adopt(previous.sampler)

    async def start(self) -> None:
        await super().start()
        self.sampler.start()

    async def close(self) -> None:
        await self.sampler.stop()
        await super().close()

    async def admit(self, request: Request) -> None:
        settings = self._settings
        if not settings.allow_remote:
            if not is_loopback(_hostname(request.host)):
                raise HttpError(403, "admin answers only to loopback Host names\n")
            origin = request.headers.get("origin")
            if request.method == "POST" and origin and not is_loopback(_hostname(origin)):
                raise HttpError(403, "cross-origin admin requests are refused\n")
        if settings.auth_token is not None:
            expected = f"Bearer {settings.auth_token.get_secret_value()}".encode()
            given = request.headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, expected):
                raise HttpError(
                    401,
                    "admin needs Authorization: Bearer <admin.auth_token>\n",
                    (("WWW-Authenticate", 'Bearer realm="pillion-admin"'),),
                )

    async def _index(self, request: Request) -> Response:
        return index_page(ENDPOINTS)

    async def _stats(self, request: Request) -> Response:
        document = self.sampler.document(self._control)
        return Response(
            json.dumps(document).encode(),
            content_type="application/json",
            headers=(("Cache-Control", "no-store"),),
        )

    async def _asset(self, request: Request) -> Response:
        return asset(request.path)

    async def _config(self, request: Request) -> Response:
        return Response.json(self._control.config.model_dump(mode="json"))

    async def _drain(self, request: Request) -> Response:
        log.info("drain requested", extra={"peer": request.remote})
        self._control.begin_drain()
        return Response.json({"draining": True})

    async def _quit(self, request: Request) -> Response:
        log.info("exit requested", extra={"peer": request.remote})
        self._control.request_exit()
        return Response.json({"exiting": True})

    async def _get_logging(self, request: Request) -> Response:
        return Response.json({"level": current_level(), "levels": levels()})

    async def _set_logging(self, request: Request) -> Response:
        level: object = request.query.get("level")
        if level is None and request.body:
            try:
                body = orjson.loads(request.body)
            except orjson.JSONDecodeError:
                raise HttpError(400, 'body must be JSON: {"level": "debug"}\n') from None
            level = body.get("level") if isinstance(body, dict) else None
        if not isinstance(level, str):
            raise HttpError(400, 'give ?level=NAME or {"level": "NAME"}\n')
        try:
            set_level(level)
        except ValueError as exc:
            raise HttpError(400, f"{exc}\n") from None
        log.warning("log level changed", extra={"level": level, "peer": request.remote})
        return Response.json({"level": current_level()})


def _hostname(value: str | None) -> str:
    """The host part of a ``Host`` header or an ``Origin`` URL."""
    if not value:
        return ""
    if "://" in value:
        return urlsplit(value).hostname or ""
    return urlsplit(f"//{value}").hostname or ""
