"""The admin server (loopback, default 127.0.0.1:15000): look inside and steer.

``GET /config`` (secrets as ``***``), ``POST /drain``, ``POST /quitquitquit``,
``GET|POST /logging``, ``GET /``. Because these endpoints can stop the sidecar,
a loopback admin server also refuses requests whose ``Host`` is not a loopback
name (DNS rebinding) and POSTs from a non-loopback browser ``Origin``; with
``admin.auth_token`` set every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import html
import logging
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from pillion.config import PillionConfig
from pillion.config.types import is_loopback
from pillion.runtime.control import Control
from pillion.runtime.http_server import HttpServerComponent
from pillion.telemetry import current_level, set_level
from pillion.telemetry.logs import levels

__all__ = ["ENDPOINTS", "AdminServer"]

log = logging.getLogger("pillion.admin")

ENDPOINTS: list[tuple[str, str, str]] = [
    ("GET", "/config", "the effective configuration as JSON, secrets shown as ***"),
    ("POST", "/drain", "stop taking new traffic (readiness fails), keep running"),
    ("POST", "/quitquitquit", "drain, then exit 0 (for Jobs)"),
    ("GET", "/logging", "the current log level"),
    ("POST", "/logging?level=debug", "change the log level (debug, info, warning, error)"),
]


class AdminServer(HttpServerComponent):
    def __init__(self, config: PillionConfig, control: Control) -> None:
        super().__init__("admin", config.admin.listen, config.admin.max_request_size)
        self._control = control
        self._settings = config.admin

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._guard)
        app.router.add_get("/", self._index)
        app.router.add_get("/config", self._config)
        app.router.add_post("/drain", self._drain)
        app.router.add_post("/quitquitquit", self._quit)
        app.router.add_get("/logging", self._get_logging)
        app.router.add_post("/logging", self._set_logging)

    def can_reconfigure(self, config: PillionConfig) -> bool:
        return config.admin.listen == self.listen

    def reconfigure(self, config: PillionConfig) -> None:
        self._settings = config.admin
        self.max_request_size = config.admin.max_request_size

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = self._settings
        if not settings.allow_remote:
            if not is_loopback(_hostname(request.host)):
                raise web.HTTPForbidden(text="admin answers only to loopback Host names\n")
            origin = request.headers.get("Origin")
            if request.method == "POST" and origin and not is_loopback(_hostname(origin)):
                raise web.HTTPForbidden(text="cross-origin admin requests are refused\n")
        if settings.auth_token is not None:
            expected = f"Bearer {settings.auth_token.get_secret_value()}".encode()
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise web.HTTPUnauthorized(
                    text="admin needs Authorization: Bearer <admin.auth_token>\n",
                    headers={"WWW-Authenticate": 'Bearer realm="pillion-admin"'},
                )
        return await handler(request)

    async def _index(self, request: web.Request) -> web.Response:
        rows = "\n".join(
            f'<tr><td>{method}</td><td><a href="{html.escape(path)}">{html.escape(path)}</a>'
            f"</td><td>{html.escape(text)}</td></tr>"
            for method, path, text in ENDPOINTS
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Pillion admin</title>"
            "</head><body><h1>Pillion admin</h1><table>"
            f"<tr><th>method</th><th>path</th><th>what</th></tr>{rows}</table></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(self._control.config.model_dump(mode="json"))

    async def _drain(self, request: web.Request) -> web.Response:
        log.info("drain requested", extra={"peer": request.remote})
        self._control.begin_drain()
        return web.json_response({"draining": True})

    async def _quit(self, request: web.Request) -> web.Response:
        log.info("exit requested", extra={"peer": request.remote})
        self._control.request_exit()
        return web.json_response({"exiting": True})

    async def _get_logging(self, request: web.Request) -> web.Response:
        return web.json_response({"level": current_level(), "levels": levels()})

    async def _set_logging(self, request: web.Request) -> web.Response:
        level = request.query.get("level")
        if level is None and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                raise web.HTTPBadRequest(text='body must be JSON: {"level": "debug"}\n') from None
            level = body.get("level") if isinstance(body, dict) else None
        if not isinstance(level, str):
            raise web.HTTPBadRequest(text='give ?level=NAME or {"level": "NAME"}\n')
        try:
            set_level(level)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        log.warning("log level changed", extra={"level": level, "peer": request.remote})
        return web.json_response({"level": current_level()})


def _hostname(value: str | None) -> str:
    """The host part of a ``Host`` header or an ``Origin`` URL."""
    if not value:
        return ""
    if "://" in value:
        return urlsplit(value).hostname or ""
    return urlsplit(f"//{value}").hostname or ""
