"""The dashboard's document (``GET /stats``): what the page shows, as JSON. No I/O.

Built from the latest reading of Pillion's own series, the history of per-target
points, the recent warnings and errors, and a few values of the running config
(``StatsContext``). Every value is a number, a name, or text Pillion wrote about
itself (a component's problems, a log message reduced by ``recent``): nothing
here comes from a secret's value or a request's content. The schema is in
docs/dashboard.md; ``SCHEMA`` changes when a field changes meaning or goes away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, TypedDict

from pillion.telemetry.history import History, Ring
from pillion.telemetry.readings import Reading
from pillion.telemetry.recent import RecentRecord
from pillion.telemetry.sections import (
    ClusterDoc,
    ConfigDoc,
    LogsDoc,
    SecretsDoc,
    clusters_section,
    config_section,
    logs_section,
    secrets_section,
)
from pillion.telemetry.traffic import Target

__all__ = ["SCHEMA", "StatsContext", "StatsDocument", "stats_document"]

SCHEMA: Final = 1
DIGITS: Final = 6  # decimals of the history's values: microseconds, a millionth of a share


@dataclass(frozen=True)
class StatsContext:
    """What the document needs from outside the registry."""

    version: str
    interval: float  # seconds between two points of the history
    health: dict[str, object]  # runtime.control.Health.as_json()
    cluster_endpoints: dict[str, list[str]] = field(default_factory=dict)  # configured
    memory_buffer_limit: int | None = None  # logs.memory_buffer, bytes
    disk_buffer_limit: int | None = None  # logs.disk_buffer.max_size, bytes


class SeriesDoc(TypedDict, total=False):
    kind: str  # listener, route, cluster, log_input, log_output
    name: str
    rate: list[float | None]  # requests (or log lines) per second
    errors: list[float | None]  # share of requests answered 5xx, 0..1
    p50: list[float | None]  # seconds
    p99: list[float | None]  # seconds


class HistoryDoc(TypedDict):
    interval_seconds: float
    points: int  # the most points a series holds
    max_targets: int
    budget_bytes: int
    capped: bool  # some target is left out because of max_targets
    dropped_targets: int
    time: list[float | None]  # Unix seconds of each point
    series: list[SeriesDoc]


class ProcessDoc(TypedDict):
    start_time: float | None
    resident_memory_bytes: float | None
    cpu_seconds: float | None


class StatsDocument(TypedDict):
    schema: int
    time: float
    version: str
    process: ProcessDoc
    health: dict[str, object]
    history: HistoryDoc
    clusters: list[ClusterDoc]
    logs: LogsDoc | None
    secrets: SecretsDoc | None
    config: ConfigDoc
    recent_errors: list[RecentRecord]
    recent_errors_seen: int


def stats_document(
    *,
    now: float,
    reading: Reading,
    history: History[Target],
    recent: list[RecentRecord],
    recent_seen: int,
    context: StatsContext,
) -> StatsDocument:
    """The document at ``now`` (Unix seconds)."""
    latest = _latest_rates(history)
    return StatsDocument(
        schema=SCHEMA,
        time=now,
        version=context.version,
        process=ProcessDoc(
            start_time=reading.value("pillion_start_time_seconds"),
            resident_memory_bytes=reading.value("pillion_process_resident_memory_bytes"),
            cpu_seconds=reading.value("pillion_process_cpu_seconds_total"),
        ),
        health=context.health,
        history=history_section(history, context.interval),
        clusters=clusters_section(reading, context.cluster_endpoints, now),
        logs=logs_section(
            reading,
            latest,
            memory_limit=context.memory_buffer_limit,
            disk_limit=context.disk_buffer_limit,
        ),
        secrets=secrets_section(reading, now),
        config=config_section(reading),
        recent_errors=recent,
        recent_errors_seen=recent_seen,
    )


def history_section(history: History[Target], interval: float) -> HistoryDoc:
    series: list[SeriesDoc] = []
    for (kind, name), rings in sorted(history.targets().items()):
        doc = SeriesDoc(kind=kind, name=name)
        for field_name, ring in rings.items():
            if not ring.empty():
                doc[field_name] = ring.exported(DIGITS)  # type: ignore[literal-required]
        series.append(doc)
    return HistoryDoc(
        interval_seconds=interval,
        points=history.points,
        max_targets=history.max_targets,
        budget_bytes=history.budget_bytes,
        capped=history.capped,
        dropped_targets=history.dropped,
        time=history.times.exported(3),
        series=series,
    )


def _latest_rates(history: History[Target]) -> dict[Target, float]:
    """Each target's rate at the last point, where known."""
    found: dict[Target, float] = {}
    for target, rings in history.targets().items():
        value = _last(rings.get("rate"))
        if value is not None:
            found[target] = value
    return found


def _last(ring: Ring | None) -> float | None:
    if ring is None or not len(ring):
        return None
    value = list(ring)[-1]
    return None if math.isnan(value) else value
