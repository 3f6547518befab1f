"""The secrets' exceptions."""

from __future__ import annotations

__all__ = ["SecretsError"]


class SecretsError(Exception):
    """Init mode failed; the message names the template or source and the cause."""
