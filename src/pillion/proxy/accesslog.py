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
from typing import TYPE_CHECKING, Final

import orjson
from librt.strings import BytesWriter
from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import ACCESS_LOG_FIELDS, AccessLogConfig
from pillion.http.request import RequestHead
from pillion.telemetry import Metrics

if TYPE_CHECKING:
    from pillion.proxy.cluster import Target

__all__ = ["AccessLog", "Entry"]

MAX_BACKLOG: Final = 100_000
_BATCH: Final = 256
_SLICE: Final = 32  # lines rendered per loop turn: about 100 µs

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
        self._render_slice(batch, 0, BytesWriter())

    def _render_slice(self, batch: list[Entry], start: int, rendered: BytesWriter) -> None:
        """Render ``_SLICE`` lines, then let the loop run before the next slice.

        Rendering on the loop: a writer thread rendering in parallel fights the
        loop for the GIL (measured: a third of throughput lost). In slices: one
        long batch would stall requests arriving meanwhile (measured in p99).
        """
        render, clock = self._render, self._clock
        end = min(start + _SLICE, len(batch))
        for index in range(start, end):
            render(batch[index], clock, rendered)
        if end < len(batch) and self._loop is not None:
            self._loop.call_soon(self._render_slice, batch, end, rendered)
            return
        future = self._writer.submit(self._write, rendered.getvalue(), len(batch))
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


_MILLISECONDS: Final = [b".%03dZ" % n for n in range(1000)]


class _Clock:
    """RFC 3339 timestamps, the part up to the second formatted once per second:
    ``stamp`` gives that part and the milliseconds' (with the ``Z``)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def stamp(self, epoch: float) -> tuple[bytes, bytes]:
        second = int(epoch)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return self._prefix, _MILLISECONDS[min(int((epoch - second) * 1000), 999)]


def _json_text(value: str) -> bytes:
    """``value`` as a JSON string, escaped by orjson (a lone surrogate, which a name
    in the config could hold, written as U+FFFD)."""
    return orjson.dumps(value.encode("utf-8", "replace").decode("utf-8", "replace"))


# Bytes that may stand between a JSON string's quotes as they are: printable ASCII
# but the quote and the backslash. ``_MARK`` maps every other byte to 0x80, so a
# plain value is one that stays ASCII through it (two C loops, the second a word
# at a time; cheaper than deleting or searching).
_PLAIN_BYTES: Final = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')
_MARK: Final = bytes(c if c in _PLAIN_BYTES else 0x80 for c in range(256))


def _plain(data: bytes) -> bool:
    """Whether ``data`` is JSON text as it is between quotes."""
    return data.translate(_MARK).isascii()


class _Names:
    """JSON text of names from the config (listeners, flags, routes, clusters,
    upstream addresses), escaped once per name, not once per line."""

    __slots__ = ("_addresses", "_texts")

    def __init__(self) -> None:
        self._texts: dict[str, bytes] = {}
        self._addresses: dict[object, bytes] = {}

    def address(self, address: object) -> bytes:
        """An endpoint's address (a ``ListenAddress``), formatted once."""
        text = self._addresses.get(address)
        if text is None:
            if len(self._addresses) > 4096:  # endpoints come and go with DNS: bounded
                self._addresses.clear()
            text = self._addresses[address] = _json_text(str(address))
        return text

    def text(self, name: str) -> bytes:
        text = self._texts.get(name)
        if text is None:
            if len(self._texts) > 4096:  # endpoints come and go with DNS: bounded
                self._texts.clear()
            text = self._texts[name] = _json_text(name)
        return text


# ".0", ".001" ... ".999" without trailing zeros: as repr() writes a float's fraction
_FRACTIONS: Final = [(b".%03d" % n).rstrip(b"0") if n else b".0" for n in range(1000)]
_SMALL: Final = [b"%d" % n for n in range(1000)]


def _decimal(number: int) -> bytes:
    return _SMALL[number] if 0 <= number < 1000 else b"%d" % number


def _milliseconds(seconds: float) -> bytes:
    """Milliseconds to the microsecond, as ``repr(round(ms, 3))`` writes them (the
    correctly rounded ``round`` costs several times more)."""
    micros = int(seconds * 1_000_000 + 0.5)
    return _decimal(micros // 1000) + _FRACTIONS[micros % 1000]


def _text(value: bytes | None, text: str | None = None) -> bytes:
    """A field's JSON text: ``null`` when empty, else a string escaped by orjson
    (from ``text``, else from ``value`` as Latin-1)."""
    if not value:
        return b"null"
    return _json_text(value.decode("latin-1") if text is None else text)


def _string(value: bytes) -> bytes:
    """A plain value's JSON text: quoted as it is, ``null`` when empty."""
    return b'"' + value + b'"' if value else b"null"


def _slots(entry: Entry, clock: _Clock, names: _Names) -> list[bytes]:
    """The pieces of a line with every field, in ``ACCESS_LOG_FIELDS`` order, each
    field's key first (``_SIZES`` says how many pieces each field has), then the
    line's end: joined, they are the line.

    What the client sent (method, path, ids, user agent) is checked in one go:
    quoted as it is when all of it is plain, each value escaped by orjson when any
    is not. What its certificate or the app said (identity, gRPC message) and the
    logged-in user are text, escaped by orjson.
    """
    head = entry[3]
    target = entry[12]
    request_id = entry[10]
    traceparent = entry[11]
    if head is not None:
        method = head.method
        path = head.target
        agent = _header(head, b"user-agent")
        protocol = b'"HTTP/' + head.version + b'"'
    else:
        method = path = agent = b""
        protocol = b"null"
    if _plain(b"".join([method, path, agent, request_id, traceparent])):
        texts = [_string(method), _string(path), _string(agent),
                 _string(request_id), _string(traceparent)]  # fmt: skip
    else:
        texts = [_text(method), _text(path), _text(agent), _text(request_id),
                 _text(traceparent)]  # fmt: skip
    if head is not None and not path:
        texts[1] = b'""'  # a request line with an empty target (null: no request line)
    identity = entry[14]
    message = entry[16]
    user = entry[17]
    grpc_status = _grpc_status(entry[15])
    if target is not None:
        route, cluster = target.labels
        pool = target.pool
        route_text = names.text(route) if route else b"null"
        cluster_text = names.text(cluster) if cluster else b"null"
        upstream = names.address(pool.address) if pool is not None else b"null"
    else:
        route_text = cluster_text = upstream = b"null"
    second, fraction = clock.stamp(entry[0])
    return [
        b'{"time":"', second, fraction, b'"',
        b',"listener":', names.text(entry[1]),
        b',"client":"', entry[2], b'"',  # an IP address, or "unknown"
        b',"method":', texts[0],
        b',"path":', texts[1],
        b',"protocol":', protocol,
        b',"code":', _decimal(entry[4]),
        b',"flags":', names.text(entry[5]),
        b',"bytes_in":', _decimal(entry[6]),
        b',"bytes_out":', _decimal(entry[7]),
        b',"duration_ms":', _milliseconds(entry[8]),
        b',"upstream_ms":', _milliseconds(entry[9]) if entry[9] >= 0 else b"null",
        b',"request_id":', texts[3],
        b',"traceparent":', texts[4],
        b',"user_agent":', texts[2],
        b',"route":', route_text,
        b',"cluster":', cluster_text,
        b',"upstream":', upstream,
        b',"retries":', _decimal(entry[13]),
        b',"identity":', _text(identity, identity.decode("utf-8", "replace") if identity else ""),
        b',"grpc_status":', _decimal(grpc_status) if grpc_status is not None else b"null",
        b',"grpc_message":', _text(message, _grpc_message(message)),
        b',"user":', _text(user, user.decode("utf-8", "replace") if user else ""),
        b"}\n",
    ]  # fmt: skip


# How many of ``_slots``' pieces each field has, in ``ACCESS_LOG_FIELDS`` order.
_SIZES: Final = {"time": 4, "client": 3}


Render = Callable[[Entry, _Clock, BytesWriter], None]


def _compile(fields: list[str]) -> Render:
    """A function writing an entry as one JSON line with ``fields``, in that order,
    to a ``BytesWriter`` (a batch's lines go to one): no dict and no serializer per
    line; the line of every field is its pieces as they come, another choice or
    order picks its fields' pieces."""
    names = _Names()
    if fields == list(ACCESS_LOG_FIELDS):

        def render_every(entry: Entry, clock: _Clock, out: BytesWriter) -> None:
            for piece in _slots(entry, clock, names):
                out.write(piece)

        return render_every
    where: dict[str, range] = {}
    start = 0
    for known in ACCESS_LOG_FIELDS:
        size = _SIZES.get(known, 2)
        where[known] = range(start, start + size)
        start += size
    order = [index for name in fields for index in where[name]]
    # the first field's key opens the line: if another opens it, "time" follows a comma
    later_time = order.index(0) if "time" in fields[1:] else -1

    def render(entry: Entry, clock: _Clock, out: BytesWriter) -> None:
        if not order:
            out.write(b"{}\n")
            return
        slots = _slots(entry, clock, names)
        parts = [slots[index] for index in order]
        parts[0] = b"{" + parts[0][1:]
        if later_time > 0:
            parts[later_time] = b',"time":"'
        for piece in parts:
            out.write(piece)
        out.write(b"}\n")

    return render


def _grpc_status(raw: bytes | None) -> int | None:
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 4 else None


def _grpc_message(raw: bytes | None) -> str | None:
    """grpc-message is percent-encoded UTF-8 on the wire: logged decoded."""
    return urllib.parse.unquote(raw.decode("latin-1")) if raw else None


def _header(head: RequestHead | None, lower: bytes) -> bytes:
    if head is None:
        return b""
    lowered = head.lowered
    for index in range(len(lowered)):
        if lowered[index] == lower:
            return head.headers[index][1]
    return b""
