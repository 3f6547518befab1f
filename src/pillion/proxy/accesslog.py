"""The access log: JSON lines, collected on the event loop, written by a thread.

The request path only appends a tuple to a list. Every ``flush_interval`` (or
at 1024 lines) the batch goes to one writer thread that formats the JSON and
writes it with one ``write``; a slow disk or pipe never blocks the proxy. If the
writer falls more than ``MAX_BACKLOG`` lines behind, lines are dropped and
counted (``pillion_access_log_dropped_total``) rather than memory growing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import os
import random
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import AccessLogConfig
from pillion.http.request import RequestHead
from pillion.telemetry import Metrics

__all__ = ["AccessLog", "Entry"]

MAX_BACKLOG = 100_000
_BATCH = 1024

# (start wall time, listener, client ip, head or None, code, flags, bytes in, bytes out,
#  duration s, upstream s, request id, traceparent)
Entry = tuple[float, str, bytes, RequestHead | None, int, str, int, int, float, float, bytes, bytes]


def _dropped_family(registry: CollectorRegistry) -> Counter:
    return Counter(
        "pillion_access_log_dropped",
        "Access log lines dropped because the writer fell behind.",
        registry=registry,
    )


class AccessLog:
    def __init__(self, config: AccessLogConfig, metrics: Metrics) -> None:
        self.config = config
        self._getters = tuple((name, _GETTERS[name]) for name in config.fields)
        self._sample = config.sample
        self._pending: list[Entry] = []
        self._backlog = 0
        self._timer: asyncio.TimerHandle | None = None
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "pillion-access-log")
        self._in_flight: set[concurrent.futures.Future[None]] = set()
        self._dropped = metrics.family("access_log_dropped", _dropped_family)
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        """Open the file (or take stdout); raise ``OSError`` if it cannot be written."""
        self._loop = asyncio.get_running_loop()
        if self.config.path == "-":
            self._fd = os.dup(1)
        else:
            self._fd = os.open(self.config.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def record(self, entry: Entry) -> None:
        if self._sample < 1.0 and entry[4] < 500 and random.random() >= self._sample:  # noqa: S311
            return
        if self._backlog >= MAX_BACKLOG:
            self._dropped.inc()
            return
        pending = self._pending
        pending.append(entry)
        self._backlog += 1
        if len(pending) >= _BATCH:
            self.flush()
        elif self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self.config.flush_interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch or self._fd < 0:
            return
        future = self._writer.submit(self._write, batch)
        self._in_flight.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: concurrent.futures.Future[None]) -> None:
        self._in_flight.discard(future)

    def _write(self, batch: list[Entry]) -> None:
        getters = self._getters
        dumps = orjson.dumps
        data = b"".join([dumps(_line(entry, getters)) + b"\n" for entry in batch])
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._dropped.inc(len(batch))
        finally:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._done, len(batch))

    def _done(self, count: int) -> None:
        self._backlog -= count

    async def close(self) -> None:
        self.flush()
        if self._in_flight:
            await asyncio.wait([asyncio.wrap_future(f) for f in list(self._in_flight)])
        self._writer.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _time(entry: Entry) -> str:
    return (
        dt.datetime.fromtimestamp(entry[0], dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _text(raw: bytes) -> str | None:
    return raw.decode("latin-1") if raw else None


_GETTERS: dict[str, Callable[[Entry], Any]] = {
    "time": _time,
    "listener": lambda e: e[1],
    "client": lambda e: e[2].decode(),
    "method": lambda e: e[3].method.decode() if e[3] else None,
    "path": lambda e: e[3].target.decode("latin-1") if e[3] else None,
    "protocol": lambda e: f"HTTP/{e[3].version.decode()}" if e[3] else None,
    "code": lambda e: e[4],
    "flags": lambda e: e[5],
    "bytes_in": lambda e: e[6],
    "bytes_out": lambda e: e[7],
    "duration_ms": lambda e: round(e[8] * 1000, 3),
    "upstream_ms": lambda e: round(e[9] * 1000, 3) if e[9] >= 0 else None,
    "request_id": lambda e: _text(e[10]),
    "traceparent": lambda e: _text(e[11]),
    "user_agent": lambda e: _header(e[3], b"user-agent"),
}


def _line(entry: Entry, getters: tuple[tuple[str, Callable[[Entry], Any]], ...]) -> dict[str, Any]:
    return {name: get(entry) for name, get in getters}


def _header(head: RequestHead | None, lower: bytes) -> str | None:
    if head is None:
        return None
    for name, value in head.headers:
        if name.lower() == lower:
            return value.decode("latin-1")
    return None
