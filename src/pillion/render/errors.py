"""The rendering exception (here, so that catching it does not load Jinja2)."""

from __future__ import annotations

__all__ = ["RenderError"]


class RenderError(Exception):
    """A template could not be rendered; the message names the template and the
    cause (and line), and never holds a value."""
