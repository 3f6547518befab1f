"""The /stats document from readings: sections, the cap said, JSON all through."""

from __future__ import annotations

import datetime as dt
import json

from pillion.telemetry.history import History
from pillion.telemetry.readings import Reading
from pillion.telemetry.recent import RecentRecord
from pillion.telemetry.stats import SCHEMA, StatsContext, stats_document
from pillion.telemetry.traffic import FIELDS, Target

NOW = 1_800_000_000.0
HEALTH: dict[str, object] = {"started": True, "live": True, "ready": True, "draining": False,
                             "components": {"proxy": {"state": "running"}}}  # fmt: skip


def reading() -> Reading:
    return Reading(
        {
            "pillion_cluster_endpoints": [
                ({"cluster": "orders", "state": "healthy"}, 1.0),
                ({"cluster": "orders", "state": "ejected"}, 1.0),
                ({"cluster": "users", "state": "healthy"}, 2.0),
                ({"cluster": "users", "state": "ejected"}, 0.0),
            ],
            "pillion_outlier_ejections_total": [({"cluster": "orders"}, 3.0)],
            "pillion_cluster_endpoint_ejected_until_timestamp_seconds": [
                ({"cluster": "orders", "endpoint": "10.0.0.1:80"}, 0.0),
                ({"cluster": "orders", "endpoint": "10.0.0.2:80"}, NOW + 30),
                ({"cluster": "users", "endpoint": "10.1.0.7:80"}, 0.0),
            ],
            "pillion_cluster_circuit_open": [
                ({"cluster": "orders", "cap": "pending"}, 1.0),
                ({"cluster": "orders", "cap": "requests"}, 0.0),
            ],
            "pillion_logs_input_records_total": [({"input": "app"}, 120.0)],
            "pillion_logs_output_records_total": [({"output": "loki"}, 100.0)],
            "pillion_logs_dead_letter_records_total": [({"output": "loki"}, 2.0)],
            "pillion_logs_lag_bytes": [({"input": "app", "file": "/var/log/app/a.log"}, 512.0)],
            "pillion_logs_buffer_bytes": [({"tier": "memory"}, 4096.0), ({"tier": "disk"}, 0.0)],
            "pillion_secret_last_render_timestamp_seconds": [({"template": "db"}, NOW - 60)],
            "pillion_secret_renders_total": [
                ({"template": "db", "result": "changed"}, 2.0),
                ({"template": "db", "result": "error"}, 1.0),
            ],
            "pillion_secret_lease_expiry_timestamp_seconds": [({"source": "pg"}, NOW + 600)],
            "pillion_secret_stale": [({"source": "pg"}, 0.0)],
            "pillion_config_last_reload_successful": [({}, 0.0)],
            "pillion_config_reloads_total": [
                ({"result": "success"}, 2.0),
                ({"result": "error"}, 1.0),
            ],
        }
    )


def document(history: History[Target], recent: list[RecentRecord], now: float = NOW) -> str:
    context = StatsContext(
        version="1.2.3",
        interval=5.0,
        health=HEALTH,
        cluster_endpoints={"orders": ["10.0.0.1:80", "10.0.0.2:80"], "users": ["users:80"]},
        memory_buffer_limit=16 << 20,
        disk_buffer_limit=None,
    )
    doc = stats_document(now=now, reading=reading(), history=history, recent=recent,
                         recent_seen=len(recent), context=context)  # fmt: skip
    return json.dumps(doc, allow_nan=False)  # strict JSON: no NaN reaches a browser


def test_document_sections() -> None:
    history: History[Target] = History(points=4, max_targets=8, fields=FIELDS)
    history.add(NOW - 5, {("log_input", "app"): {"rate": 12.0}})
    doc = json.loads(document(history, []))
    assert doc["schema"] == SCHEMA
    assert doc["version"] == "1.2.3"
    assert doc["health"]["components"]["proxy"]["state"] == "running"
    orders, users = doc["clusters"]
    assert (orders["healthy"], orders["ejected"], orders["ejections"]) == (1, 1, 3)
    assert orders["circuit_open"] == ["pending"]
    assert orders["endpoints"] == [
        {"address": "10.0.0.1:80", "state": "healthy", "ejected_until": None},
        {"address": "10.0.0.2:80", "state": "ejected", "ejected_until": NOW + 30},
    ]
    # the addresses its name resolved to
    assert users["endpoints"] == [
        {"address": "10.1.0.7:80", "state": "healthy", "ejected_until": None}
    ]
    logs = doc["logs"]
    files = [{"file": "/var/log/app/a.log", "lag_bytes": 512}]
    assert logs["inputs"][0] == {
        "name": "app", "lines_per_second": 12.0, "lines": 120, "paused": False, "files": files
    }  # fmt: skip
    assert logs["outputs"][0]["dead_letters"] == 2
    assert logs["buffer"]["memory_bytes"] == 4096
    assert logs["buffer"]["memory_limit_bytes"] == 16 << 20
    template = doc["secrets"]["templates"][0]
    assert (template["renders"], template["failed_renders"]) == (3, 1)
    assert doc["secrets"]["sources"][0]["lease_ttl_seconds"] == 600
    assert doc["config"]["last_reload_successful"] is False
    assert (doc["config"]["reloads"], doc["config"]["failed_reloads"]) == (2, 1)


def test_a_cluster_not_sampled_yet_shows_its_configured_endpoints() -> None:
    history: History[Target] = History(points=2, max_targets=2, fields=FIELDS)
    context = StatsContext(
        version="1", interval=5.0, health=HEALTH, cluster_endpoints={"new": ["api:8080"]},
        memory_buffer_limit=None, disk_buffer_limit=None,
    )  # fmt: skip
    doc = stats_document(now=NOW, reading=Reading({}), history=history, recent=[],
                         recent_seen=0, context=context)  # fmt: skip
    assert doc["clusters"][0]["endpoints"] == [
        {"address": "api:8080", "state": "no address", "ejected_until": None}
    ]


def test_an_ejection_past_its_end_is_healthy_again() -> None:
    history: History[Target] = History(points=2, max_targets=2, fields=FIELDS)
    later = json.loads(document(history, [], now=NOW + 31))
    assert [e["state"] for e in later["clusters"][0]["endpoints"]] == ["healthy", "healthy"]


def test_a_capped_history_says_so() -> None:
    history: History[Target] = History(points=3, max_targets=2, fields=FIELDS)
    history.add(NOW, {("route", f"inbound/r{n}"): {"rate": 1.0, "errors": 0.0} for n in range(5)})
    shown = json.loads(document(history, []))["history"]
    assert shown["capped"] is True
    assert shown["dropped_targets"] == 3
    assert shown["max_targets"] == 2
    assert len(shown["series"]) == 2
    assert set(shown["series"][0]) == {"kind", "name", "rate", "errors"}  # no empty p50/p99
    assert shown["time"] == [NOW]


def test_no_logs_nor_secrets_configured_gives_null_sections() -> None:
    history: History[Target] = History(points=2, max_targets=2, fields=FIELDS)
    context = StatsContext(version="1", interval=5.0, health=HEALTH)
    doc = stats_document(now=NOW, reading=Reading({}), history=history, recent=[],
                         recent_seen=0, context=context)  # fmt: skip
    assert doc["logs"] is None
    assert doc["secrets"] is None
    assert doc["clusters"] == []


def _rfc3339(unix: float) -> str:
    return (
        dt.datetime.fromtimestamp(unix, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
