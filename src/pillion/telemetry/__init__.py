"""Pillion's own telemetry: JSON logs on stderr and the metrics registry.

Nothing else in Pillion talks to ``prometheus_client`` or configures logging.
"""

from pillion.telemetry.logs import configure_logging, current_level, set_level
from pillion.telemetry.metrics import Metrics

__all__ = ["Metrics", "configure_logging", "current_level", "set_level"]
