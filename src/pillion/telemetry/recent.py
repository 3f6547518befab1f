"""The last warnings and errors Pillion logged, for the dashboard.

A ``logging.Handler`` on the ``pillion`` logger that keeps the last ``size``
records at WARNING or above, each reduced to its time, level, component and
message plus a few fields from ``extra`` that are known to name things, not to
carry data (a cluster, a listener, a file's path, an error...), as short strings
(lists of strings, as a refused config's errors, joined). Other
``extra`` values are never copied: a field someone adds later cannot reach the
page without being named here first.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from typing import Final, TypedDict

from pillion.telemetry.logs import ROOT_LOGGER, level_name

__all__ = ["RecentRecord", "RecentRecords"]

SAFE_FIELDS: Final = frozenset(
    {
        "cluster", "endpoint", "seconds", "listener", "route", "output", "input", "path",
        "template", "source", "watch", "target", "issuer", "address", "key", "worker",
        "exit_code", "signal", "reason", "status", "error", "errors",
    }
)  # fmt: skip
MAX_FIELD_LENGTH: Final = 300  # characters of one field; the rest is cut


class RecentRecord(TypedDict):
    time: str  # RFC 3339, UTC
    level: str
    component: str
    message: str
    fields: dict[str, str]


class RecentRecords(logging.Handler):
    """A bounded ring of Pillion's WARNING+ records (oldest first)."""

    def __init__(self, size: int = 50) -> None:
        super().__init__(logging.WARNING)
        self._records: deque[RecentRecord] = deque(maxlen=size)
        self.seen = 0  # records kept since the start, also those pushed out since

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._records.append(_reduced(record))
            self.seen += 1
        except Exception:  # a broken record must not break the code that logged it
            self.handleError(record)

    def records(self) -> list[RecentRecord]:
        return list(self._records)

    def attach(self) -> None:
        """Receive the records of every ``pillion`` logger."""
        logging.getLogger(ROOT_LOGGER).addHandler(self)

    def detach(self) -> None:
        logging.getLogger(ROOT_LOGGER).removeHandler(self)

    def adopt(self, other: RecentRecords) -> None:
        """Keep what ``other`` had (a replacement built by a reload)."""
        self._records.extend(other.records())
        self.seen += other.seen


def _reduced(record: logging.LogRecord) -> RecentRecord:
    name = record.name
    fields = {
        key: _short(value if isinstance(value, str | int | float | bool) else "; ".join(value))
        for key, value in vars(record).items()
        if key in SAFE_FIELDS and _scalar_or_strings(value)
    }
    if "error" not in fields and record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        fields["error"] = _short(f"{type(error).__name__}: {error}")
    return RecentRecord(
        time=dt.datetime.fromtimestamp(record.created, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        level=level_name(record.levelno, record.levelname),
        component=name[len(ROOT_LOGGER) + 1 :] if name.startswith(ROOT_LOGGER + ".") else name,
        message=_short(record.getMessage()),
        fields=fields,
    )


def _scalar_or_strings(value: object) -> bool:
    if isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_FIELD_LENGTH else text[: MAX_FIELD_LENGTH - 1] + "…"
