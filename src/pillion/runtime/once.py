"""Init mode: render the secrets and config templates once and exit (``pillion
init``, ``run --once``).

Every template of both sections is rendered in memory first; the files are
written only when all rendered, so a failure leaves nothing half done.
"""

from __future__ import annotations

import logging
import os

import uvloop

from pillion.config import PillionConfig
from pillion.configwatch.metrics import ConfigFamilies
from pillion.render.errors import RenderError
from pillion.render.fileset import RenderedFiles
from pillion.render.sources import SourceError, read_source
from pillion.secrets.component import SecretsComponent
from pillion.secrets.errors import SecretsError
from pillion.telemetry import Metrics, configure_logging

__all__ = ["render_once"]

log = logging.getLogger("pillion.init")


def render_once(config: PillionConfig) -> int:
    """0 when every template rendered and was written, 1 otherwise: then nothing was
    written, and the error names the template or source."""
    configure_logging(config.telemetry.log_level)
    try:
        changed = uvloop.run(_render(config))
    except (SecretsError, RenderError, SourceError) as exc:
        log.error("init failed; nothing written", extra={"error": str(exc)})
        return 1
    if changed is None:
        log.info("nothing to render: the config has no secrets or config templates")
    else:
        log.info("rendered", extra={"changed": changed})
    return 0


async def _render(config: PillionConfig) -> list[str] | None:
    metrics = Metrics(process=False)
    planned: list[tuple[RenderedFiles, dict[str, bytes]]] = []
    if config.secrets is not None:
        secrets = SecretsComponent(config.secrets, metrics, notify=config.app.notify)
        planned.append((secrets.files, await secrets.render_once()))
    if config.config is not None and config.config.templates:
        files = RenderedFiles(list(config.config.templates), "config", lambda _: None,
                              metrics.family("config", ConfigFamilies).renders, log)  # fmt: skip
        files.compile()
        values = {s.name: read_source(s, os.environ) for s in config.config.sources}
        planned.append((files, files.render_all_or_nothing(values)))
    if not planned:
        return None
    changed = []
    for files, contents in planned:
        for template in files.templates:
            try:
                if files.write(template, contents[template.name]):
                    changed.append(template.name)
            except OSError as exc:
                raise SecretsError(f"template {template.name}: {exc}") from None
    return changed
