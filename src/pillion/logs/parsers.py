"""Parsing a record's message into fields: JSON, logfmt, or a regex with named
groups; and reading a timestamp out of a field. No I/O.

A message that does not parse keeps its fields empty (and is counted); it is
never dropped.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["Parser", "make_parser", "parse_logfmt", "parse_time"]

Parser = Callable[[bytes], dict[str, Any] | None]

_LOGFMT = re.compile(rb'([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))')


def parse_json(message: bytes) -> dict[str, Any] | None:
    if not message.startswith(b"{"):
        return None
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_logfmt(message: bytes) -> dict[str, Any] | None:
    """``key=value key2="quoted value"``; None when there is no pair at all."""
    fields: dict[str, Any] = {}
    for match in _LOGFMT.finditer(message):
        key, quoted, bare = match.groups()
        value = bare if quoted is None else re.sub(rb"\\(.)", rb"\1", quoted)
        fields[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return fields or None


def make_parser(kind: str, pattern: str | None = None) -> Parser:
    if kind == "json":
        return parse_json
    if kind == "logfmt":
        return parse_logfmt
    assert pattern is not None
    compiled = re.compile(pattern.encode())

    def parse_regex(message: bytes) -> dict[str, Any] | None:
        match = compiled.search(message)
        if match is None:
            return None
        return {
            name: value.decode("utf-8", "replace")
            for name, value in match.groupdict().items()
            if value is not None
        }

    return parse_regex


def parse_time(value: object, layout: str) -> float | None:
    """Unix seconds from ``value`` in ``layout``: ``rfc3339``, ``unix``, ``unix_ms``,
    or a ``strptime`` format (UTC unless it has a zone)."""
    try:
        if layout == "unix":
            return float(value)  # type: ignore[arg-type]
        if layout == "unix_ms":
            return float(value) / 1000  # type: ignore[arg-type]
        if not isinstance(value, str):
            return None
        if layout == "rfc3339":
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            moment = datetime.datetime.strptime(value, layout)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
