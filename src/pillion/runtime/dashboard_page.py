"""The dashboard's page and its assets, as the admin server serves them.

One HTML page, a script and a style sheet of Pillion's, and uPlot (vendored in
``static/``, see its README): read from the installed package once, served with
their content types. The page runs only what comes from the admin server itself
(``Content-Security-Policy``: self only, no inline script, no framing), so it
works offline and through ``kubectl port-forward``.
"""

from __future__ import annotations

import functools
import html
from importlib import resources
from typing import Final

from pillion.runtime.http_server import Response

__all__ = ["ASSETS", "SECURITY_HEADERS", "asset", "index_page"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
ASSETS: Final = {
    "/static/dashboard.js": "text/javascript; charset=utf-8",
    "/static/dashboard.css": "text/css; charset=utf-8",
    "/static/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "/static/uPlot.min.css": "text/css; charset=utf-8",
}
_ENDPOINTS_MARK: Final = "<!--ENDPOINTS-->"


@functools.cache
def _static(name: str) -> bytes:
    return (resources.files("pillion.runtime") / "static" / name).read_bytes()


def index_page(endpoints: list[tuple[str, str, str]]) -> Response:
    """The dashboard, with the admin endpoints listed at its foot."""
    rows = "\n".join(
        f'<tr><td>{method}</td><td><a href="{html.escape(path)}">{html.escape(path)}</a>'
        f"</td><td>{html.escape(text)}</td></tr>"
        for method, path, text in endpoints
    )
    page = _static("dashboard.html").decode().replace(_ENDPOINTS_MARK, rows)
    return Response(
        page.encode(), content_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
    )


def asset(path: str) -> Response:
    """One of ``ASSETS``, by its path."""
    return Response(
        _static(path.removeprefix("/static/")),
        content_type=ASSETS[path],
        headers=(("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-cache")),
    )
