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
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import ACCESS_LOG_FIELDS, AccessLogConfig
from pillion.http.request import RequestHead
from pillion.telemetry import Metrics

if TYPE_CHECKING:
    from pillion.proxy.cluster import Target

__all__ = ["AccessLog", "Entry"]

MAX_BACKLOG = 100_000
_BATCH = 256
_SLICE = 32  # lines rendered per loop turn: about 100 µs

# (start wall time, listener, client ip, head or None, code, flags, bytes in, bytes out,
#  duration s, upstream s, request id, traceparent, target or None, retries, identity)
Entry = tuple[
    float, str, bytes, RequestHead | None, int, str, int, int, float, float, bytes, bytes,
    "Target | None", int, bytes | None, bytes | None, bytes | None,
]  # fmt: skip


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
                # Not ``view[os.write(...):]``: mypyc evaluates a call in a slice
                # bound twice (seen in mypy 2.4's output): two writes of each batch.
                written = os.write(self._fd, view)
                view = view[written:]
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


_MILLISECONDS = [f".{n:03d}Z" for n in range(1000)]


class _Clock:
    """RFC 3339 timestamps, the part up to the second formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def stamp(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._prefix + _MILLISECONDS[min(int((epoch - second) * 1000), 999)]


_UNSAFE = re.compile(r'[\x00-\x1f"\\]')  # what a JSON string cannot hold as it is


def _string(value: str | None) -> str:
    """``value`` as JSON: as it is between quotes when nothing in it needs escaping
    (a log line's values almost never do), else escaped by orjson."""
    if value is None:
        return "null"
    if _UNSAFE.search(value) is None:
        return f'"{value}"'
    return orjson.dumps(value).decode()


def _text(raw: bytes) -> str:
    return _string(raw.decode("latin-1")) if raw else "null"


def _milliseconds(seconds: float) -> str:
    return repr(round(seconds * 1000, 3))


def _values(entry: Entry, clock: _Clock, address: Callable[[Any], str | None]) -> list[str]:
    """The JSON text of every field of ``entry``, in ``ACCESS_LOG_FIELDS`` order."""
    head = entry[3]
    target = entry[12]
    grpc_status = _grpc_status(entry[15])
    return [
        f'"{clock.stamp(entry[0])}"',
        _string(entry[1]),
        _string(entry[2].decode("latin-1")),
        _string(head.method.decode("latin-1")) if head else "null",
        _string(head.target.decode("latin-1")) if head else "null",
        f'"HTTP/{head.version.decode("latin-1")}"' if head else "null",
        str(entry[4]),
        _string(entry[5]),
        str(entry[6]),
        str(entry[7]),
        _milliseconds(entry[8]),
        _milliseconds(entry[9]) if entry[9] >= 0 else "null",
        _text(entry[10]),
        _text(entry[11]),
        _text(_header(head, b"user-agent")),
        _string(target.labels[0] or None) if target is not None else "null",
        _string(target.labels[1] or None) if target is not None else "null",
        _string(address(target.pool)) if target is not None else "null",
        str(entry[13]),
        _string(entry[14].decode("utf-8", "replace")) if entry[14] else "null",
        str(grpc_status) if grpc_status is not None else "null",
        _string(_grpc_message(entry[16])),
    ]


def _compile(fields: list[str]) -> Callable[[Entry, _Clock], bytes]:
    """A function rendering an entry as one JSON line with ``fields``, in that order.

    Each value is rendered as JSON text and the line joined once: no dict and no
    serializer per line (orjson only for the rare string that needs escaping).
    """
    order = [ACCESS_LOG_FIELDS.index(name) for name in fields]
    keys = [("{" if i == 0 else ",") + f'"{name}":' for i, name in enumerate(fields)]
    addresses: dict[object, str] = {}  # an endpoint's address as text, formatted once

    def address(pool: Any) -> str | None:
        if pool is None:
            return None
        key = pool.address
        text = addresses.get(key)
        if text is None:
            if len(addresses) > 4096:  # endpoints come and go with DNS: bounded
                addresses.clear()
            text = addresses[key] = str(key)
        return text

    def render(entry: Entry, clock: _Clock) -> bytes:
        values = _values(entry, clock, address)
        parts: list[str] = []
        for key, index in zip(keys, order, strict=True):
            parts.append(key)
            parts.append(values[index])
        parts.append("}\n" if parts else "{}\n")
        return "".join(parts).encode(
            "utf-8", "replace"
        )  # a config name could hold a lone surrogate

    return render


def _grpc_status(raw: bytes | None) -> int | None:
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 4 else None


def _grpc_message(raw: bytes | None) -> str | None:
    """grpc-message is percent-encoded UTF-8 on the wire: logged decoded."""
    return urllib.parse.unquote(raw.decode("latin-1")) if raw else None


def _header(head: RequestHead | None, lower: bytes) -> bytes:
    if head is None:
        return b""
    for name, value in head.headers:
        if name.lower() == lower:
            return value
    return b""
