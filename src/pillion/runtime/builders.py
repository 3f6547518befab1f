"""Which components a config asks for, in start order.

Order matters: the status server first (the kubelet's probes answer, with 503,
while the rest starts), then the admin server, then the features: secrets and
config first so the app can start after the first render, then proxy, logs and
exporters. The supervisor drains in the reverse order, control parts last.
Constructors must not bind or start anything: a reload builds a full set and
discards the ones it does not need.
"""

from __future__ import annotations

from collections.abc import Callable

from pillion.components import Component
from pillion.config import PillionConfig
from pillion.runtime.admin import AdminServer
from pillion.runtime.control import Control
from pillion.runtime.status import StatusServer
from pillion.telemetry import Metrics

# A feature's modules (and their dependencies: aiohttp's client, Jinja2, h2,
# cryptography...) are imported only when its section is configured: an idle
# sidecar pays in memory and start time only for what it runs.

__all__ = ["Builder", "build_components"]

Builder = Callable[[PillionConfig, Control, Metrics], list[Component]]


def build_components(config: PillionConfig, control: Control, metrics: Metrics) -> list[Component]:
    """The components for ``config``, in the order they start."""
    components: list[Component] = [
        StatusServer(config, control, metrics),
        AdminServer(config, control, metrics),
    ]
    if config.app.health is not None:
        from pillion.runtime.app_health import AppHealth

        components.append(AppHealth(config))
    if config.secrets is not None:
        from pillion.secrets.component import SecretsComponent

        components.append(SecretsComponent(config.secrets, metrics, notify=config.app.notify))
    if config.config is not None:
        from pillion.configwatch.component import ConfigWatchComponent

        components.append(ConfigWatchComponent(config.config, metrics, notify=config.app.notify))
    if config.proxy is not None and config.proxy.workers > 1:
        from pillion.proxy.multiprocess import ProxyWorkers

        components.append(ProxyWorkers(config, metrics))
    elif config.proxy is not None:
        from pillion.proxy.component import ProxyComponent

        components.append(
            ProxyComponent(config.proxy, config.app, metrics, config.telemetry.tracing)
        )
    exporters = config.exporters
    if config.logs is not None:
        from pillion.logs.component import LogsComponent

        from_logs = exporters.from_logs if exporters is not None else []
        components.append(LogsComponent(config.logs, metrics, from_logs=from_logs))
    if exporters is not None:
        reserved = exporters.declared_metric_names()  # what StatsD and the app never take
        if exporters.json:
            from pillion.exporters.jsonscrape import JsonExporterComponent

            components.append(JsonExporterComponent(exporters.json, metrics))
        if exporters.merge_app is not None:
            from pillion.exporters.appmetrics import AppMetricsComponent

            components.append(AppMetricsComponent(exporters.merge_app, metrics, reserved=reserved))
        if exporters.statsd is not None:
            from pillion.exporters.statsd_component import StatsdComponent

            components.append(StatsdComponent(exporters.statsd, metrics, reserved=reserved))
    return components
