"""Durations and sizes as people write them in ``pillion.yaml``.

``250ms``, ``1.5s``, ``5m``, ``1h30m`` become seconds (``float``); ``512KiB``,
``64MiB``, ``1GB`` become bytes (``int``). Pure functions, no I/O. A bare number
is refused for durations (is ``5`` seconds or milliseconds?) except ``0``; for
sizes a bare integer means bytes, as everywhere else.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = [
    "Duration",
    "Size",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_DURATION_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)(?:ns|us|µs|ms|s|m|h|d))+")

_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?")


def parse_duration(value: object) -> float:
    """Seconds from ``"250ms"``, ``"1.5s"``, ``"1h30m"``; raises ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '250ms', '1.5s' or '5m', not a boolean")
    if isinstance(value, int | float):
        if value == 0:
            return 0.0
        raise ValueError(f"a duration needs a unit: write '{value}s' or '{value}ms', not {value}")
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '250ms', '1.5s' or '5m'")
    text = value.strip()
    if text == "0":
        return 0.0
    if not _DURATION_WHOLE.fullmatch(text):
        raise ValueError(
            f"invalid duration {value!r}: use a number and a unit "
            "(ns, us, ms, s, m, h, d), e.g. '250ms', '1.5s', '1h30m'"
        )
    return sum(float(num) * _DURATION_UNITS[unit] for num, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in one unit: ``0.25 -> '250ms'``."""
    if seconds == 0:
        return "0s"
    for unit, factor in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        amount = seconds / factor
        if amount >= 1 and math.isclose(amount, round(amount), abs_tol=1e-9):
            return f"{round(amount)}{unit}"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


def parse_size(value: object) -> int:
    """Bytes from ``"512KiB"``, ``"64MiB"``, ``"1GB"`` or a plain integer."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '512KiB' or '64MiB', not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("expected a size such as '512KiB' or '64MiB'")
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"invalid size {value!r}: use a number and a unit "
            "(B, KB, MB, GB, KiB, MiB, GiB), e.g. '512KiB', '64MiB'"
        )
    number, unit = match.groups()
    size = float(number) * _SIZE_UNITS[unit or ""]
    if not size.is_integer():
        raise ValueError(f"invalid size {value!r}: not a whole number of bytes")
    return int(size)


def format_size(size: int) -> str:
    """The largest binary unit that spells ``size`` exactly: ``65536 -> '64KiB'``."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _SIZE_UNITS[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def _duration_before(value: Any) -> float:
    return parse_duration(value)


def _size_before(value: Any) -> int:
    return parse_size(value)


Duration = Annotated[
    float,
    BeforeValidator(_duration_before),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "duration",
            "pattern": r"^(0|((\d+(\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h|d))+)$",
            "examples": ["250ms", "1.5s", "5m"],
        }
    ),
]
"""A duration in seconds, written with a unit in YAML."""

Size = Annotated[
    int,
    BeforeValidator(_size_before),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$"},
            ],
            "format": "size",
            "examples": ["512KiB", "64MiB"],
        }
    ),
]
"""A size in bytes, written with a unit (or as a plain integer) in YAML."""
