"""The config section's metric families."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["ConfigFamilies"]


class ConfigFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.changes = Counter(
            "pillion_config_changes",
            "Settled changes of a watch's content (whether or not they passed validation).",
            ["watch"],
            registry=registry,
        )
        self.validation_failures = Counter(
            "pillion_config_validation_failures",
            "Changes refused by a watch's validate command (non-zero exit, timeout, or it "
            "could not run); the app was not notified.",
            ["watch"],
            registry=registry,
        )
        self.last_change = Gauge(
            "pillion_config_last_change_timestamp_seconds",
            "When a watch's content last changed, once settled (Unix time).",
            ["watch"],
            registry=registry,
        )
        self.renders = Counter(
            "pillion_config_renders",
            "Renders of a config template, by result: changed (file written), unchanged, "
            "error (the previous file kept).",
            ["template", "result"],
            registry=registry,
        )
