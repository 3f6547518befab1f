"""The parts of the dashboard's document read from the latest reading. No I/O.

Clusters (endpoints healthy or ejected, circuit breakers), the log pipeline
(lines per second, buffer, lag, dead letters), secrets (renders, leases) and the
configuration (reloads, watched files). Counters are given as totals since the
start; rates come from the history (``traffic``).
"""

from __future__ import annotations

from typing import TypedDict

from pillion.telemetry.readings import Reading
from pillion.telemetry.traffic import Target

__all__ = [
    "ClusterDoc",
    "ConfigDoc",
    "LogsDoc",
    "SecretsDoc",
    "clusters_section",
    "config_section",
    "logs_section",
    "secrets_section",
]


class EndpointDoc(TypedDict):
    address: str  # host:port, as configured, or an address one resolved to
    state: str  # healthy, ejected, or no address (not resolved, not sampled yet)
    ejected_until: float | None  # Unix seconds, when ejected


class ClusterDoc(TypedDict):
    name: str
    endpoints: list[EndpointDoc]
    healthy: int  # addresses taking requests
    ejected: int  # addresses out after consecutive errors (outlier detection)
    ejections: int  # since the start
    connect_errors: int  # since the start
    circuit_open: list[str]  # the caps reached now: requests, pending, retries, connections
    in_flight: dict[str, int]  # requests, pending, retries, connections


class LogFileDoc(TypedDict):
    file: str
    lag_bytes: int  # bytes of the file not yet delivered


class LogInputDoc(TypedDict):
    name: str
    lines_per_second: float | None
    lines: int
    paused: bool
    files: list[LogFileDoc]


class LogOutputDoc(TypedDict):
    name: str
    lines_per_second: float | None
    lines: int
    errors: int
    retries: int
    dead_letters: int


class LogBufferDoc(TypedDict):
    memory_bytes: int
    memory_limit_bytes: int | None
    disk_bytes: int
    disk_limit_bytes: int | None
    full: bool


class LogsDoc(TypedDict):
    inputs: list[LogInputDoc]
    outputs: list[LogOutputDoc]
    buffer: LogBufferDoc


class TemplateDoc(TypedDict):
    name: str
    last_render: float | None  # Unix seconds
    renders: int
    failed_renders: int


class SourceDoc(TypedDict):
    name: str
    lease_expiry: float | None  # Unix seconds; renewed at about 2/3 of the lease
    lease_ttl_seconds: float | None
    stale: bool  # the source is failing: the last good value is kept


class SecretsDoc(TypedDict):
    templates: list[TemplateDoc]
    sources: list[SourceDoc]


class WatchDoc(TypedDict):
    name: str
    last_change: float | None
    changes: int
    validation_failures: int


class ConfigDoc(TypedDict):
    loaded_at: float | None  # Unix seconds, the running config
    last_reload_successful: bool
    reloads: int
    failed_reloads: int
    watches: list[WatchDoc]


def clusters_section(
    reading: Reading, configured: dict[str, list[str]], now: float
) -> list[ClusterDoc]:
    """The clusters, their endpoint counts by state, and each endpoint's state from
    its own gauge (the addresses a cluster's names resolved to; every proxy worker's,
    an endpoint being out in any of them)."""
    states = reading.by("pillion_cluster_endpoints", "cluster", "state")
    ejections = reading.by("pillion_outlier_ejections_total", "cluster")
    errors = reading.by("pillion_cluster_connect_errors_total", "cluster")
    circuit = reading.by("pillion_cluster_circuit_open", "cluster", "cap")
    in_flight = reading.by("pillion_cluster_in_flight", "cluster", "kind")
    until = reading.by(ENDPOINT_EJECTED_UNTIL, "cluster", "endpoint")
    names = sorted(set(configured) | {cluster for cluster, _ in states})
    clusters: list[ClusterDoc] = []
    for name in names:
        healthy = int(states.get((name, "healthy"), 0))
        ejected = int(states.get((name, "ejected"), 0))
        sampled = {endpoint: end for (cluster, endpoint), end in until.items() if cluster == name}
        clusters.append(
            ClusterDoc(
                name=name,
                endpoints=_endpoints(configured.get(name, []), sampled, now),
                healthy=healthy,
                ejected=ejected,
                ejections=int(ejections.get((name,), 0)),
                connect_errors=int(errors.get((name,), 0)),
                circuit_open=sorted(c for (n, c), v in circuit.items() if n == name and v > 0),
                in_flight={kind: int(v) for (n, kind), v in sorted(in_flight.items()) if n == name},
            )
        )
    return clusters


ENDPOINT_EJECTED_UNTIL = "pillion_cluster_endpoint_ejected_until_timestamp_seconds"


def _endpoints(configured: list[str], sampled: dict[str, float], now: float) -> list[EndpointDoc]:
    """The sampled addresses (what the cluster's names resolved to), healthy or
    ejected (until when); before any is sampled (a name not resolved yet, or no
    sample taken yet), the configured ones, with no address."""
    if not sampled:
        return [
            EndpointDoc(address=address, state="no address", ejected_until=None)
            for address in configured
        ]
    return [
        EndpointDoc(address=address, state="ejected", ejected_until=end)
        if end > now
        else EndpointDoc(address=address, state="healthy", ejected_until=None)
        for address, end in sorted(sampled.items())
    ]


def logs_section(
    reading: Reading,
    rates: dict[Target, float],
    *,
    memory_limit: int | None,
    disk_limit: int | None,
) -> LogsDoc | None:
    read = reading.by("pillion_logs_input_records_total", "input")
    sent = reading.by("pillion_logs_output_records_total", "output")
    if not read and not sent and not reading.samples("pillion_logs_buffer_bytes"):
        return None
    paused = reading.by("pillion_logs_input_paused", "input")
    lag = reading.by("pillion_logs_lag_bytes", "input", "file")
    errors = reading.by("pillion_logs_output_errors_total", "output")
    retries = reading.by("pillion_logs_output_retries_total", "output")
    dead = reading.by("pillion_logs_dead_letter_records_total", "output")
    buffer = reading.by("pillion_logs_buffer_bytes", "tier")
    inputs = sorted({name for (name,) in read} | {name for name, _ in lag})
    outputs = sorted({name for (name,) in sent} | {name for (name,) in errors})
    return LogsDoc(
        inputs=[
            LogInputDoc(
                name=name,
                lines_per_second=rates.get(("log_input", name)),
                lines=int(read.get((name,), 0)),
                paused=paused.get((name,), 0) > 0,
                files=[
                    LogFileDoc(file=file, lag_bytes=int(v))
                    for (i, file), v in sorted(lag.items())
                    if i == name
                ],
            )
            for name in inputs
        ],
        outputs=[
            LogOutputDoc(
                name=name,
                lines_per_second=rates.get(("log_output", name)),
                lines=int(sent.get((name,), 0)),
                errors=int(errors.get((name,), 0)),
                retries=int(retries.get((name,), 0)),
                dead_letters=int(dead.get((name,), 0)),
            )
            for name in outputs
        ],
        buffer=LogBufferDoc(
            memory_bytes=int(buffer.get(("memory",), 0)),
            memory_limit_bytes=memory_limit,
            disk_bytes=int(buffer.get(("disk",), 0)),
            disk_limit_bytes=disk_limit,
            full=(reading.value("pillion_logs_buffer_full") or 0) > 0,
        ),
    )


def secrets_section(reading: Reading, now: float) -> SecretsDoc | None:
    rendered = reading.by("pillion_secret_last_render_timestamp_seconds", "template")
    renders = reading.by("pillion_secret_renders_total", "template", "result")
    expiry = reading.by("pillion_secret_lease_expiry_timestamp_seconds", "source")
    stale = reading.by("pillion_secret_stale", "source")
    fetches = reading.by("pillion_secret_fetches_total", "source", "result")
    templates = sorted({name for (name,) in rendered} | {name for name, _ in renders})
    sources = sorted({name for name, in expiry} | {name for name, in stale}
                     | {name for name, _ in fetches})  # fmt: skip
    if not templates and not sources:
        return None
    return SecretsDoc(
        templates=[
            TemplateDoc(
                name=name,
                last_render=rendered.get((name,)) or None,
                renders=int(sum(v for (t, _), v in renders.items() if t == name)),
                failed_renders=int(renders.get((name, "error"), 0)),
            )
            for name in templates
        ],
        sources=[
            SourceDoc(
                name=name,
                lease_expiry=expiry.get((name,)) or None,
                lease_ttl_seconds=expiry[name,] - now if expiry.get((name,)) else None,
                stale=stale.get((name,), 0) > 0,
            )
            for name in sources
        ],
    )


def config_section(reading: Reading) -> ConfigDoc:
    reloads = reading.by("pillion_config_reloads_total", "result")
    changed = reading.by("pillion_config_last_change_timestamp_seconds", "watch")
    changes = reading.by("pillion_config_changes_total", "watch")
    failures = reading.by("pillion_config_validation_failures_total", "watch")
    watches = sorted({name for (name,) in changed} | {name for (name,) in changes})
    return ConfigDoc(
        loaded_at=reading.value("pillion_config_last_load_timestamp_seconds"),
        last_reload_successful=(reading.value("pillion_config_last_reload_successful") or 0) > 0,
        reloads=int(reloads.get(("success",), 0)),
        failed_reloads=int(reloads.get(("error",), 0)),
        watches=[
            WatchDoc(
                name=name,
                last_change=changed.get((name,)) or None,
                changes=int(changes.get((name,), 0)),
                validation_failures=int(failures.get((name,), 0)),
            )
            for name in watches
        ],
    )
