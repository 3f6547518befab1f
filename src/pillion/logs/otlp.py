"""The OTLP/HTTP JSON encoding of log records (OpenTelemetry protocol, logs). No I/O.

One ``resourceLogs`` entry per batch, with the pod metadata as resource
attributes when records carry it, one ``scopeLogs`` for Pillion, and a
``logRecord`` per record: ``timeUnixNano``, ``observedTimeUnixNano``, the message
as ``body.stringValue``, a severity from a ``level`` field when there is one, and
the other fields as attributes (nested objects flattened with dots).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from pillion.logs.buffer import Record

__all__ = ["otlp_body"]

# OpenTelemetry severity numbers (the first of each range)
_SEVERITY = {
    "trace": 1, "debug": 5, "info": 9, "notice": 10, "warn": 13, "warning": 13,
    "error": 17, "err": 17, "critical": 21, "fatal": 21, "panic": 21,
}  # fmt: skip


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 as a string, as OTLP/JSON requires
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(fields: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _attributes(value, f"{name}.")
        elif value is not None:
            out.append({"key": name, "value": _value(value)})
    return out


def otlp_body(batch: list[Record], now: float | None = None) -> bytes:
    """OTLP/JSON logs. ``timeUnixNano`` is the record's time (the app's own, the
    runtime's, else when it was read); ``observedTimeUnixNano`` is ``now``, when
    the batch leaves (default: the clock)."""
    observed = str(int((time.time() if now is None else now) * 1e9))
    records = []
    resource: dict[str, Any] = {}
    for record in batch:
        fields = dict(record.fields or {})
        pod = fields.pop("kubernetes", None)
        if isinstance(pod, dict) and not resource:
            resource = {f"k8s.{k}.name" if k in ("namespace", "pod", "container", "node")
                        else f"k8s.pod.{k}": v for k, v in pod.items()}  # fmt: skip
        level = str(fields.get("level", "")).lower()
        attributes = _attributes(
            {**fields, "log.file.path": record.path, "pillion.input": record.input}
        )
        if record.stream is not None:
            attributes.append({"key": "log.iostream", "value": _value(record.stream)})
        entry: dict[str, Any] = {
            "timeUnixNano": str(int(record.time * 1e9)),
            "observedTimeUnixNano": observed,
            "body": {"stringValue": record.message.decode("utf-8", "replace")},
            "attributes": attributes,
        }
        if level in _SEVERITY:
            entry["severityNumber"] = _SEVERITY[level]
            entry["severityText"] = level.upper()
        records.append(entry)
    return orjson.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {"attributes": _attributes(resource)},
                    "scopeLogs": [{"scope": {"name": "pillion"}, "logRecords": records}],
                }
            ]
        }
    )
