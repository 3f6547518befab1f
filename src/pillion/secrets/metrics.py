"""The secrets' metric families."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["SecretFamilies"]


class SecretFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.renders = Counter(
            "pillion_secret_renders",
            "Renders of a template, by result: changed (file written), unchanged, error "
            "(the previous file kept).",
            ["template", "result"],
            registry=registry,
        )
        self.last_render = Gauge(
            "pillion_secret_last_render_timestamp_seconds",
            "When a template last rendered successfully (Unix time).",
            ["template"],
            registry=registry,
        )
        self.lease_expiry = Gauge(
            "pillion_secret_lease_expiry_timestamp_seconds",
            "When a source's lease (or certificate) ends (Unix time).",
            ["source"],
            registry=registry,
        )
        self.stale = Gauge(
            "pillion_secret_stale",
            "1 while a source's last fetch failed and its last good values are in use.",
            ["source"],
            registry=registry,
        )
        self.fetches = Counter(
            "pillion_secret_fetches",
            "Fetches of a source, by result (ok, failed).",
            ["source", "result"],
            registry=registry,
        )
        self.lease_renewals = Counter(
            "pillion_secret_lease_renewals",
            "Lease renewals, by source and result (ok, failed).",
            ["source", "result"],
            registry=registry,
        )
        self.auth = Counter(
            "pillion_vault_auth",
            "Vault logins and token renewals, by result (ok, failed, renewed, renew_failed).",
            ["result"],
            registry=registry,
        )
