"""Pillion's own logs: one JSON object per line on stderr.

Each line has ``time`` (RFC 3339, UTC), ``level``, ``component`` (the logger
name below ``pillion.``), ``message``, and the record's extra fields, so
``log.info("listening", extra={"address": "0.0.0.0:15020"})`` becomes
``{..., "message": "listening", "address": "0.0.0.0:15020"}``.
Never pass a secret's value as a field; pass a ``Secret`` and it prints ``***``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import IO, Any, Final

import orjson

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "current_level",
    "level_name",
    "levels",
    "set_level",
]

ROOT_LOGGER: Final = "pillion"

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_NAMES: Final = {number: name for name, number in _LEVELS.items()}
# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _default(value: Any) -> Any:
    return str(value)


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON objects."""

    def format(self, record: logging.LogRecord) -> str:
        name = record.name
        component = name[len(ROOT_LOGGER) + 1 :] if name.startswith(ROOT_LOGGER + ".") else name
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": level_name(record.levelno, record.levelname),
            "component": component,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=_default).decode()


def level_name(number: int, fallback: str) -> str:
    """The name Pillion's logs give a level (``warning``), or ``fallback`` lower case."""
    return _NAMES.get(number, fallback.lower())


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """Send the ``pillion`` loggers to ``stream`` (stderr) as JSON lines."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    set_level(level)


def set_level(level: str) -> None:
    """Change the level of every ``pillion`` logger; ``ValueError`` if unknown."""
    try:
        logging.getLogger(ROOT_LOGGER).setLevel(_LEVELS[level])
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}") from None


def current_level() -> str:
    """The level of the ``pillion`` loggers, as configured."""
    return _NAMES.get(logging.getLogger(ROOT_LOGGER).level, "info")


def levels() -> list[str]:
    """The log levels Pillion knows, lowest first."""
    return list(_LEVELS)
