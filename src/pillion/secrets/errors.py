"""The secrets' exceptions (in their own module: importing them does not load
Jinja2)."""

from __future__ import annotations

__all__ = ["RenderError", "SecretsError"]


class RenderError(Exception):
    """A template could not be rendered; the message names the template and the
    cause (and line), and never holds a value."""


class SecretsError(Exception):
    """Init mode failed; the message names the template or source and the cause."""
