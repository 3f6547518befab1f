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
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

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
#  duration s, upstream s, request id, traceparent, target or None, retries, identity,
#  grpc status, grpc message, the logged-in user)
Entry = tuple[
    float, str, bytes, RequestHead | None, int, str, int, int, float, float, bytes, bytes,
    "Target | None", int, bytes | None, bytes | None, bytes | None, bytes | None,
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


def _string(value: str | None) -> str:
    """``value`` as a JSON string (``null`` for None), escaped by orjson."""
    return "null" if value is None else orjson.dumps(value).decode()


def _plain(text: str) -> bool:
    """Whether ``text`` is printable ASCII without a quote or a backslash: JSON as it
    is between quotes (``isascii`` reads a flag; the rest are C loops)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


class _Names:
    """JSON text of names from the config (listeners, routes, clusters, upstream
    addresses), escaped once per name, not once per line."""

    __slots__ = ("_addresses", "_texts")

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._addresses: dict[object, str] = {}

    def address(self, address: object) -> str:
        """An endpoint's address (a ``ListenAddress``), formatted once."""
        text = self._addresses.get(address)
        if text is None:
            if len(self._addresses) > 4096:  # endpoints come and go with DNS: bounded
                self._addresses.clear()
            text = self._addresses[address] = _string(str(address))
        return text

    def text(self, name: str) -> str:
        text = self._texts.get(name)
        if text is None:
            if len(self._texts) > 4096:  # endpoints come and go with DNS: bounded
                self._texts.clear()
            text = self._texts[name] = _string(name)
        return text


# ".0", ".001" ... ".999" without trailing zeros: as repr() writes a float's fraction
_FRACTIONS = [f".{n:03d}".rstrip("0") if n else ".0" for n in range(1000)]


def _milliseconds(seconds: float) -> str:
    """Milliseconds to the microsecond, as ``repr(round(ms, 3))`` writes them (the
    correctly rounded ``round`` costs several times more)."""
    micros = int(seconds * 1_000_000 + 0.5)
    return str(micros // 1000) + _FRACTIONS[micros % 1000]


def _values(entry: Entry, clock: _Clock, names: _Names) -> list[str]:
    """The JSON text of every field of ``entry``, in ``ACCESS_LOG_FIELDS`` order.

    What the client sent (method, path, ids, user agent) and what its certificate
    or the app said (identity, gRPC message) is checked in one go: quoted as it is
    when all of it is plain, each value escaped by orjson when any is not.
    """
    head = entry[3]
    target = entry[12]
    grpc_status = _grpc_status(entry[15])
    if head is not None:
        method = head.method.decode("latin-1")
        path = head.target.decode("latin-1")
        protocol = f'"HTTP/{head.version.decode("latin-1")}"'
        agent = _header(head, b"user-agent").decode("latin-1")
    else:
        method = path = agent = ""
        protocol = "null"
    request_id = entry[10].decode("latin-1")
    traceparent = entry[11].decode("latin-1")
    identity = entry[14].decode("utf-8", "replace") if entry[14] else ""
    message = _grpc_message(entry[16]) or ""
    user = entry[17].decode("utf-8", "replace") if entry[17] else ""
    if _plain(f"{method}{path}{agent}{request_id}{traceparent}{identity}{message}{user}"):
        texts = (method, path, agent, request_id, traceparent, identity, message, user)
        quoted = [f'"{v}"' if v else "null" for v in texts]
    else:
        quoted = [_string(v or None) for v in (method, path, agent, request_id, traceparent,
                                                identity, message, user)]  # fmt: skip
    if head is not None and not path:
        quoted[1] = '""'  # a request line with an empty target (null: no request line)
    if target is not None:
        route, cluster = target.labels
        route = names.text(route) if route else "null"
        cluster = names.text(cluster) if cluster else "null"
        pool = target.pool
        upstream = names.address(pool.address) if pool is not None else "null"
    else:
        route = cluster = upstream = "null"
    return [
        f'"{clock.stamp(entry[0])}"',
        names.text(entry[1]),
        f'"{entry[2].decode("latin-1")}"',  # an IP address, or "unknown"
        quoted[0],
        quoted[1],
        protocol,
        str(entry[4]),
        names.text(entry[5]),
        str(entry[6]),
        str(entry[7]),
        _milliseconds(entry[8]),
        _milliseconds(entry[9]) if entry[9] >= 0 else "null",
        quoted[3],
        quoted[4],
        quoted[2],
        route,
        cluster,
        upstream,
        str(entry[13]),
        quoted[5],
        str(grpc_status) if grpc_status is not None else "null",
        quoted[6],
        quoted[7],
    ]


def _compile(fields: list[str]) -> Callable[[Entry, _Clock], bytes]:
    """A function rendering an entry as one JSON line with ``fields``, in that order.

    Each value is rendered as JSON text, dropped into the odd slots of a copy of
    the line's pieces (keys in the even ones) and joined once: no dict and no
    serializer per line.
    """
    order = [ACCESS_LOG_FIELDS.index(name) for name in fields]
    every = order == list(range(len(ACCESS_LOG_FIELDS)))
    pieces: list[str] = []
    for i, name in enumerate(fields):
        pieces += [("{" if i == 0 else ",") + f'"{name}":', ""]
    pieces.append("}\n" if fields else "{}\n")
    names = _Names()

    def render(entry: Entry, clock: _Clock) -> bytes:
        values = _values(entry, clock, names)
        parts = pieces.copy()
        parts[1::2] = values if every else [values[i] for i in order]
        # encoded with "replace": a name in the config could hold a lone surrogate
        return "".join(parts).encode("utf-8", "replace")

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
