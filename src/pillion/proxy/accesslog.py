"""The access log: JSON lines, collected on the event loop, written by a thread.

The request path only appends a tuple to a list. Every ``flush_interval`` (or
at 256 lines) the batch is rendered as JSON lines on the loop, in one go, and a
writer thread writes it with one ``write``: a slow disk or pipe never blocks
the proxy. If the
writer falls more than ``MAX_BACKLOG`` lines behind, lines are dropped and
counted (``pillion_access_log_dropped_total``) rather than memory growing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import time
from collections.abc import Callable

import orjson
from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import AccessLogConfig
from pillion.http.request import RequestHead
from pillion.telemetry import Metrics

__all__ = ["AccessLog", "Entry"]

MAX_BACKLOG = 100_000
_BATCH = 256
_SLICE = 32  # lines rendered per loop turn: about 100 µs

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
        self._render = _compile(list(config.fields))
        self._clock = _Clock()
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
        self._render_slice(batch, 0, [])

    def _render_slice(self, batch: list[Entry], start: int, rendered: list[bytes]) -> None:
        """Render ``_SLICE`` lines, then let the loop run before the next slice.

        Rendering on the loop: a writer thread rendering in parallel fights the
        loop for the GIL (measured: a third of throughput lost). In slices: one
        long batch would stall requests arriving meanwhile (measured in p99).
        """
        render, clock = self._render, self._clock
        end = start + _SLICE
        rendered.extend([render(entry, clock) for entry in batch[start:end]])
        if end < len(batch) and self._loop is not None:
            self._loop.call_soon(self._render_slice, batch, end, rendered)
            return
        future = self._writer.submit(self._write, b"".join(rendered), len(batch))
        self._in_flight.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: concurrent.futures.Future[None]) -> None:
        self._in_flight.discard(future)

    def _write(self, data: bytes, count: int) -> None:
        """In the writer thread: ``os.write`` releases the GIL while the disk works."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._dropped.inc(count)
        finally:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._done, count)

    def _done(self, count: int) -> None:
        self._backlog -= count

    async def close(self) -> None:
        self.flush()
        await asyncio.sleep(0.01)  # let the last slices render
        if self._in_flight:
            await asyncio.wait([asyncio.wrap_future(f) for f in list(self._in_flight)])
        self._writer.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _Clock:
    """RFC 3339 timestamps, the part up to the second formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def stamp(self, epoch: float) -> bytes:
        second = int(epoch)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return b'"%s.%03dZ"' % (self._prefix, int((epoch - second) * 1000))


def _string(raw: bytes) -> bytes:
    """A JSON string (escaped by orjson) or ``null``."""
    return orjson.dumps(raw.decode("latin-1")) if raw else b"null"


def _number(value: float) -> bytes:
    return b"%.3f" % value


_FIELDS: dict[str, Callable[[Entry, _Clock], bytes]] = {
    "time": lambda e, clock: clock.stamp(e[0]),
    "listener": lambda e, _: orjson.dumps(e[1]),
    "client": lambda e, _: _string(e[2]),
    "method": lambda e, _: _string(e[3].method) if e[3] else b"null",
    "path": lambda e, _: _string(e[3].target) if e[3] else b"null",
    "protocol": lambda e, _: b'"HTTP/%s"' % e[3].version if e[3] else b"null",
    "code": lambda e, _: b"%d" % e[4],
    "flags": lambda e, _: b'"%s"' % e[5].encode(),
    "bytes_in": lambda e, _: b"%d" % e[6],
    "bytes_out": lambda e, _: b"%d" % e[7],
    "duration_ms": lambda e, _: _number(e[8] * 1000),
    "upstream_ms": lambda e, _: _number(e[9] * 1000) if e[9] >= 0 else b"null",
    "request_id": lambda e, _: _string(e[10]),
    "traceparent": lambda e, _: _string(e[11]),
    "user_agent": lambda e, _: _string(_header(e[3], b"user-agent")),
}


def _compile(fields: list[str]) -> Callable[[Entry, _Clock], bytes]:
    """One function that renders an entry as a JSON object with ``fields`` in order."""
    keys = [b'"%s":' % name.encode() for name in fields]
    getters = [_FIELDS[name] for name in fields]
    pairs = list(zip(keys, getters, strict=True))

    def render(entry: Entry, clock: _Clock) -> bytes:
        return b"{" + b",".join([key + get(entry, clock) for key, get in pairs]) + b"}\n"

    return render


def _header(head: RequestHead | None, lower: bytes) -> bytes:
    if head is None:
        return b""
    for name, value in head.headers:
        if name.lower() == lower:
            return value
    return b""
