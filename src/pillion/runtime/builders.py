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
from pillion.configwatch.component import ConfigWatchComponent
from pillion.exporters.appmetrics import AppMetricsComponent
from pillion.exporters.jsonscrape import JsonExporterComponent
from pillion.exporters.statsd_component import StatsdComponent
from pillion.logs.component import LogsComponent
from pillion.proxy.listener import ProxyComponent
from pillion.proxy.workers import ProxyWorkers
from pillion.runtime.admin import AdminServer
from pillion.runtime.app_health import AppHealth
from pillion.runtime.control import Control
from pillion.runtime.status import StatusServer
from pillion.secrets.component import SecretsComponent
from pillion.telemetry import Metrics

__all__ = ["Builder", "build_components"]

Builder = Callable[[PillionConfig, Control, Metrics], list[Component]]


def build_components(config: PillionConfig, control: Control, metrics: Metrics) -> list[Component]:
    """The components for ``config``, in the order they start."""
    components: list[Component] = [
        StatusServer(config, control, metrics),
        AdminServer(config, control),
    ]
    if config.app.health is not None:
        components.append(AppHealth(config))
    if config.secrets is not None:
        components.append(SecretsComponent(config, metrics))
    if config.config is not None:
        components.append(ConfigWatchComponent(config, metrics))
    if config.proxy is not None and config.proxy.workers > 1:
        components.append(ProxyWorkers(config, metrics))
    elif config.proxy is not None:
        components.append(ProxyComponent(config, metrics))
    if config.logs is not None:
        components.append(LogsComponent(config, metrics))
    exporters = config.exporters
    if exporters is not None and exporters.json:
        components.append(JsonExporterComponent(config, metrics))
    if exporters is not None and exporters.merge_app is not None:
        components.append(AppMetricsComponent(config, metrics))
    if exporters is not None and exporters.statsd is not None:
        components.append(StatsdComponent(config, metrics))
    return components
