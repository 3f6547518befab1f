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


def _text(text: str | None) -> bytes:
    """A text field's JSON: a string escaped by orjson, ``null`` when there is none."""
    return _json_text(text) if text else b"null"


def _quote(out: BytesWriter, value: bytes, plain: bool) -> None:
    """A value the client sent: quoted as it is when ``plain``, else escaped by
    orjson (as Latin-1); ``null`` when empty."""
    if not value:
        out.write(b"null")
    elif plain:
        out.write(b'"')
        out.write(value)
        out.write(b'"')
    else:
        out.write(_json_text(value.decode("latin-1")))


def _write_milliseconds(out: BytesWriter, seconds: float) -> None:
    """Milliseconds to the microsecond, as ``repr(round(ms, 3))`` writes them (the
    correctly rounded ``round`` costs several times more)."""
    micros = int(seconds * 1_000_000 + 0.5)
    out.write(_decimal(micros // 1000))
    out.write(_FRACTIONS[micros % 1000])


def _mark(marks: list[int] | None, out: BytesWriter) -> None:
    if marks is not None:
        marks.append(len(out))


def _write_line(
    out: BytesWriter, entry: Entry, clock: _Clock, names: _Names, marks: list[int] | None
) -> None:
    """``entry`` as a JSON line with every field, in ``ACCESS_LOG_FIELDS`` order; with
    ``marks``, where each field ends is appended to it (each begins with its key,
    after a ``{`` or a ``,``).

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
    else:
        method = path = agent = b""
    plain = _plain(b"".join([method, path, agent, request_id, traceparent]))
    second, fraction = clock.stamp(entry[0])
    out.write(b'{"time":"')
    out.write(second)
    out.write(fraction)
    out.write(b'"')
    _mark(marks, out)
    out.write(b',"listener":')
    out.write(names.text(entry[1]))
    _mark(marks, out)
    out.write(b',"client":"')
    out.write(entry[2])  # an IP address, or "unknown"
    out.write(b'"')
    _mark(marks, out)
    out.write(b',"method":')
    _quote(out, method, plain)
    _mark(marks, out)
    out.write(b',"path":')
    if head is not None and not path:
        out.write(b'""')  # a request line with an empty target (null: no request line)
    else:
        _quote(out, path, plain)
    _mark(marks, out)
    out.write(b',"protocol":')
    if head is not None:
        out.write(b'"HTTP/')
        out.write(head.version)
        out.write(b'"')
    else:
        out.write(b"null")
    _mark(marks, out)
    out.write(b',"code":')
    out.write(_decimal(entry[4]))
    _mark(marks, out)
    out.write(b',"flags":')
    out.write(names.text(entry[5]))
    _mark(marks, out)
    out.write(b',"bytes_in":')
    out.write(_decimal(entry[6]))
    _mark(marks, out)
    out.write(b',"bytes_out":')
    out.write(_decimal(entry[7]))
    _mark(marks, out)
    out.write(b',"duration_ms":')
    _write_milliseconds(out, entry[8])
    _mark(marks, out)
    out.write(b',"upstream_ms":')
    if entry[9] >= 0:
        _write_milliseconds(out, entry[9])
    else:
        out.write(b"null")
    _mark(marks, out)
    out.write(b',"request_id":')
    _quote(out, request_id, plain)
    _mark(marks, out)
    out.write(b',"traceparent":')
    _quote(out, traceparent, plain)
    _mark(marks, out)
    out.write(b',"user_agent":')
    _quote(out, agent, plain)
    _mark(marks, out)
    route = cluster = upstream = b"null"
    if target is not None:
        route_name, cluster_name = target.labels
        if route_name:
            route = names.text(route_name)
        if cluster_name:
            cluster = names.text(cluster_name)
        if target.pool is not None:
            upstream = names.address(target.pool.address)
    out.write(b',"route":')
    out.write(route)
    _mark(marks, out)
    out.write(b',"cluster":')
    out.write(cluster)
    _mark(marks, out)
    out.write(b',"upstream":')
    out.write(upstream)
    _mark(marks, out)
    out.write(b',"retries":')
    out.write(_decimal(entry[13]))
    _mark(marks, out)
    identity = entry[14]
    out.write(b',"identity":')
    out.write(_text(identity.decode("utf-8", "replace") if identity else None))
    _mark(marks, out)
    grpc_status = _grpc_status(entry[15])
    out.write(b',"grpc_status":')
    out.write(_decimal(grpc_status) if grpc_status is not None else b"null")
    _mark(marks, out)
    message = entry[16]
    out.write(b',"grpc_message":')
    out.write(_text(_grpc_message(message)))
    _mark(marks, out)
    user = entry[17]
    out.write(b',"user":')
    out.write(_text(user.decode("utf-8", "replace") if user else None))
    _mark(marks, out)
    out.write(b"}\n")


Render = Callable[[Entry, _Clock, BytesWriter], None]


def _compile(fields: list[str]) -> Render:
    """A function writing an entry as one JSON line with ``fields``, in that order,
    to a ``BytesWriter`` (a batch's lines go to one): no dict and no serializer per
    line. Another choice or order than every field in order writes the whole line
    aside, then its fields' pieces."""
    names = _Names()
    if fields == list(ACCESS_LOG_FIELDS):

        def render_every(entry: Entry, clock: _Clock, out: BytesWriter) -> None:
            _write_line(out, entry, clock, names, None)

        return render_every
    order = [ACCESS_LOG_FIELDS.index(name) for name in fields]

    def render(entry: Entry, clock: _Clock, out: BytesWriter) -> None:
        if not order:
            out.write(b"{}\n")
            return
        whole = BytesWriter()
        marks = [0]
        _write_line(whole, entry, clock, names, marks)
        line = whole.getvalue()
        for position in range(len(order)):
            index = order[position]
            out.write(b"{" if position == 0 else b",")
            out.write(line[marks[index] + 1 : marks[index + 1]])
        out.write(b"}\n")

    return render


def _grpc_status(raw: bytes | None) -> int | None:
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 4 else None


def _grpc_message(raw: bytes | None) -> str | None:
    """grpc-message is percent-encoded UTF-8 on the wire: logged decoded."""
    return urllib.parse.unquote(raw.decode("latin-1")) if raw else None


def _header(head: RequestHead, lower: bytes) -> bytes:
    lowered = head.lowered
    for index in range(len(lowered)):
        if lowered[index] == lower:
            return head.headers[index][1]
    return b""
