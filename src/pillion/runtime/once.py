"""Init mode: render the secrets once and exit (``pillion init``, ``run --once``)."""

from __future__ import annotations

import logging

import uvloop

from pillion.config import PillionConfig
from pillion.render.errors import RenderError
from pillion.secrets.component import SecretsComponent
from pillion.secrets.errors import SecretsError
from pillion.telemetry import Metrics, configure_logging

__all__ = ["render_once"]

log = logging.getLogger("pillion.secrets")


def render_once(config: PillionConfig) -> int:
    """0 when every template rendered (and was written), 1 otherwise: then nothing
    was written, and the error names the template or source."""
    configure_logging(config.telemetry.log_level)
    if config.secrets is None:
        log.info("nothing to render: the config has no secrets section")
        return 0
    component = SecretsComponent(config, Metrics(process=False))
    try:
        changed = uvloop.run(component.render_once())
    except (SecretsError, RenderError) as exc:
        log.error("init failed; nothing written", extra={"error": str(exc)})
        return 1
    log.info(
        "rendered",
        extra={"templates": len(config.secrets.templates), "changed": changed},
    )
    return 0
