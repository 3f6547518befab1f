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

__all__ = ["Parser", "make_parser", "parse_logfmt", "parse_time", "runtime_time"]

Parser = Callable[[bytes], dict[str, Any] | None]

_PAIR = rb'([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))'
_LOGFMT = re.compile(_PAIR)
# A key starts where the last pair ended, or after whitespace or "=". Trying every
# byte instead would scan a long run without "=" again from each of its bytes:
# quadratic, seconds for a 32 KiB line, minutes for one of 256 KiB.
_LOGFMT_AFTER_BREAK = re.compile(rb"(?<![^\s=])" + _PAIR)


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
    position = 0
    while True:
        match = _LOGFMT.match(message, position) or _LOGFMT_AFTER_BREAK.search(message, position)
        if match is None:
            return fields or None
        key, quoted, bare = match.groups()
        value = bare if quoted is None else re.sub(rb"\\(.)", rb"\1", quoted)
        fields[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        position = match.end()


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


_LATEST = datetime.datetime(9999, 12, 31, 23, 59, 59, 999000, datetime.UTC).timestamp()


def parse_time(value: object, layout: str) -> float | None:
    """Unix seconds from ``value`` in ``layout``: ``rfc3339``, ``unix``, ``unix_ms``,
    or a ``strptime`` format (UTC unless it has a zone). None when it is not a
    time from 1970 to the year 9999: the outputs write a record's time as a date
    or as Unix nanoseconds (unsigned in OTLP), and ``inf``, ``nan`` or a year out
    of that range would break a whole batch."""
    try:
        if layout == "unix":
            stamp = float(value)  # type: ignore[arg-type]
        elif layout == "unix_ms":
            stamp = float(value) / 1000  # type: ignore[arg-type]
        elif not isinstance(value, str):
            return None
        else:
            if layout == "rfc3339":
                moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            else:
                moment = datetime.datetime.strptime(value, layout)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
            stamp = moment.timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    return stamp if 0.0 <= stamp <= _LATEST else None


_SECONDS: dict[str, float | None] = {}  # "YYYY-MM-DDTHH:MM:SS" (UTC) -> Unix seconds


def runtime_time(text: str) -> float | None:
    """Unix seconds from a CRI line's timestamp (RFC 3339), as ``parse_time`` reads
    it. containerd and CRI-O write nanoseconds in UTC
    (``2024-05-01T12:00:00.250000000Z``): for those the date and time of day are
    read once per second and the fraction added, which is what a line costs."""
    if len(text) == 30 and text[29] == "Z" and text[19] == ".":
        second = _SECONDS.get(text[:19], False)
        if second is False:
            if len(_SECONDS) >= 64:
                _SECONDS.clear()
            second = _SECONDS[text[:19]] = parse_time(text[:19] + "Z", "rfc3339")
        if second is None:
            return None
        try:
            return second + float(text[19:29])
        except ValueError:
            return None
    return parse_time(text, "rfc3339")
