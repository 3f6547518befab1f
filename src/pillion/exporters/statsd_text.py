"""The pieces of a StatsD series' exposition line, as prometheus_client writes them. No I/O.

``statsd_exposition`` writes the store's families straight to text, without
building prometheus_client's ``Sample`` objects; the page must stay byte for
byte what prometheus_client's encoders would write (the tests compare both).
So the label text is escaped as they escape it (backslash, newline and double
quote, in both formats), labels are in name order, and numbers are written by
``floatToGoString``'s rules (Go's: ``+Inf``, ``NaN``, ``1.234567e+06``).

A label text is made once, when its series is created; only numbers are written
per scrape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from prometheus_client.utils import floatToGoString

__all__ = ["count_text", "help_text", "is_plain", "label_text", "value_text"]

_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_BIG: Final = 1e6  # from here on floatToGoString writes an exponent where repr() does not
_INF: Final = float("inf")


def is_plain(name: str) -> bool:
    """A name every escaping scheme this page is written directly for leaves as it
    is (no ``:``: OpenMetrics sample names lose it under ``underscores``)."""
    return _PLAIN_NAME.fullmatch(name) is not None and not name.startswith("__")


def label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """``a="x",b="y"`` (names already sorted), the values escaped."""
    return ",".join(
        [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    )


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def help_text(help: str, *, openmetrics: bool) -> str:
    """A ``# HELP`` text: OpenMetrics escapes ``"`` too, the text format does not."""
    escaped = help.replace("\\", "\\\\").replace("\n", "\\n")
    return escaped.replace('"', '\\"') if openmetrics else escaped


def value_text(value: float) -> str:
    """``floatToGoString(value)``: ``repr`` but for infinities, NaN and large values."""
    if value >= _BIG or value != value or value == -_INF:
        return str(floatToGoString(value))  # type: ignore[no-untyped-call]
    return repr(value)


def count_text(count: int) -> str:
    """``floatToGoString(float(count))`` for a count (never negative)."""
    if count < _BIG:
        return f"{count}.0"
    return str(floatToGoString(float(count)))  # type: ignore[no-untyped-call]
