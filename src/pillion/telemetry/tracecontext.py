"""W3C Trace Context (``traceparent``), B3, and request ids: validate or start one.

Without tracing a valid ``traceparent`` travels on as it came (or one is
started). With tracing (``Propagation``) Pillion's own span sits between the
caller and the app: the app is sent the same trace with Pillion's span id as
its parent, so the app's spans nest under Pillion's. Whether the trace is
sampled is the caller's decision when it made one (parent-based), else a
ratio of trace ids (the same trace id gets the same answer on every hop).
B3 (Zipkin's single ``b3`` header and the ``X-B3-*`` ones) is read when a
request has no valid ``traceparent``, and written beside it when asked for.

Ids are cut from a pool of random hex digits, refilled from ``os.urandom`` 4 KiB at
a time: one system call and one ``hex`` for about a hundred requests' ids, no
formatting per request (``random.randbytes`` costs ten times the instructions of
the kernel's generator here). Request ids and new ``traceparent`` values, made for
most requests, are made formatted, 256 at a time: each column of their layout is
filled for the whole batch by one slice copy, so handing one out is one slice. A
forked child starts with empty pools, so two workers never hand out the same ids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Final

__all__ = ["B3_MULTI_NAMES", "Propagation", "SpanContext", "new_request_id", "new_span_id",
           "new_traceparent", "trace_id", "valid_request_id", "valid_traceparent"]  # fmt: skip

_TRACEPARENT: Final = re.compile(
    rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?"
)
_POOL_BYTES: Final = 4096
# The digit that carries the RFC 4122 variant (10xx), from the random digit it replaces.
_VARIANT: Final = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")
_BATCH: Final = 256  # formatted ids made at a time
_RANDOM, _VARIANT_DIGIT = ord("x"), ord("v")  # in a layout; other bytes are literal
_REQUEST_ID: Final = re.compile(rb"[\x21-\x7e]{1,200}")
_HEX16: Final = re.compile(rb"[0-9a-f]{16}")
_HEX32: Final = re.compile(rb"[0-9a-f]{32}")
_ZERO_TRACE: Final = b"0" * 32
_ZERO_SPAN: Final = b"0" * 16
B3_MULTI_NAMES: Final = frozenset(
    {b"x-b3-traceid", b"x-b3-spanid", b"x-b3-parentspanid", b"x-b3-sampled", b"x-b3-flags"}
)


def valid_traceparent(value: bytes) -> bool:
    """A ``traceparent`` we may propagate (W3C Trace Context §3.2, version 00 and later)."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return False
    version, trace_id, parent_id, _, rest = match.groups()
    if version == b"ff" or trace_id == b"0" * 32 or parent_id == b"0" * 16:
        return False
    return version != b"00" or rest is None


def trace_id(traceparent: bytes) -> str:
    """The trace id (32 hex digits) of a valid ``traceparent``."""
    return traceparent.strip()[3:35].decode("ascii", "replace")


class _HexPool:
    """Random lower-case hex digits, handed out once each."""

    __slots__ = ("_at", "_digits")

    def __init__(self) -> None:
        self._digits = b""
        self._at = 0

    def take(self, count: int) -> bytes:
        at = self._at
        end = at + count
        if end > len(self._digits):
            self._digits = os.urandom(_POOL_BYTES).hex().encode()
            at, end = 0, count
        self._at = end
        return self._digits[at:end]

    def empty(self) -> None:
        self._digits = b""
        self._at = 0


class _Formatted:
    """Ids of one layout (``x`` a random hex digit, ``v`` the UUID variant digit, any
    other byte itself), made ``_BATCH`` at a time and handed out once each. No batch
    holds 16 zero digits in a row, so no trace or span id in it is all zeros."""

    __slots__ = ("_at", "_layout", "_made")

    def __init__(self, layout: bytes) -> None:
        self._layout = layout
        self._made = b""
        self._at = 0

    def take(self) -> bytes:
        at = self._at
        width = len(self._layout)
        if at >= len(self._made):
            self._made = self._fill()
            at = 0
        self._at = at + width
        return self._made[at : at + width]

    def _fill(self) -> bytes:
        layout = self._layout
        width = len(layout)
        randoms = layout.count(_RANDOM) + layout.count(_VARIANT_DIGIT)
        digits = os.urandom(randoms * _BATCH // 2).hex().encode()
        made = bytearray(width * _BATCH)
        source = 0
        for column in range(width):
            byte = layout[column]
            if byte == _RANDOM:
                made[column::width] = digits[source::randoms]
                source += 1
            elif byte == _VARIANT_DIGIT:
                made[column::width] = digits[source::randoms].translate(_VARIANT)
                source += 1
            else:
                made[column::width] = bytes([byte]) * _BATCH
        if _ZERO_SPAN in made:  # pragma: no cover - 2**-64 an id: an all-zero id is invalid
            return self._fill()
        return bytes(made)

    def empty(self) -> None:
        self._made = b""
        self._at = 0


_pool: Final = _HexPool()
_request_ids: Final = _Formatted(b"xxxxxxxx-xxxx-4xxx-vxxx-xxxxxxxxxxxx")
_traceparents: Final = _Formatted(b"00-" + b"x" * 32 + b"-" + b"x" * 16 + b"-01")
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.empty)
    os.register_at_fork(after_in_child=_request_ids.empty)
    os.register_at_fork(after_in_child=_traceparents.empty)


def new_traceparent() -> bytes:
    """A new sampled trace: ``00-<32 hex>-<16 hex>-01``."""
    return _traceparents.take()  # never all zeros: no batch holds 16 zero digits in a row


def valid_request_id(value: bytes) -> bool:
    """Visible ASCII, 1-200 bytes: safe to forward and to log."""
    return _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> bytes:
    """A random (version 4) UUID in its text form."""
    return _request_ids.take()


def new_span_id() -> bytes:
    """16 random hex digits, never all zeros."""
    span = _pool.take(16)
    return span if span != _ZERO_SPAN else new_span_id()  # pragma: no branch - 2**-64


class SpanContext:
    """Pillion's span of one request: its trace, its own id, the caller's span
    (``parent_id``, ``b""`` for a root) and whether the trace is sampled."""

    __slots__ = ("parent_id", "sampled", "span_id", "trace_id")

    def __init__(self, trace_id: bytes, span_id: bytes, parent_id: bytes, sampled: bool) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.sampled = sampled

    def traceparent(self) -> bytes:
        return b"".join(
            [b"00-", self.trace_id, b"-", self.span_id, b"-01" if self.sampled else b"-00"]
        )


class Propagation:
    """How the trace context of a request is read, and written on its way on.

    ``ratio``: the share of new traces (roots) that are sampled. ``b3``:
    ``"off"``, or the B3 form written (``"single"``: one ``b3`` header;
    ``"multi"``: ``X-B3-*``); both forms are read either way.
    """

    __slots__ = ("_bound", "b3", "names")

    def __init__(self, ratio: float, b3: str = "off") -> None:
        # a root is sampled when the low 64 bits of its trace id are below the bound
        self._bound = min(max(ratio, 0.0), 1.0) * 2**64
        self.b3 = b3
        # the header names it reads and replaces, beside ``traceparent``
        self.names: frozenset[bytes] = frozenset() if b3 == "off" else B3_MULTI_NAMES | {b"b3"}

    def start(self, traceparent: bytes, b3: list[tuple[bytes, bytes]] | None) -> SpanContext:
        """Pillion's span for a request that came with this ``traceparent`` (``b""``:
        none) and these B3 fields (names lower case)."""
        value = traceparent.strip()
        if value and valid_traceparent(value):
            return SpanContext(
                value[3:35], new_span_id(), value[36:52], int(value[53:55], 16) & 1 == 1
            )
        if b3:
            found = _b3_context(b3)
            if found is not None:
                trace, parent, sampled = found
                if not trace:  # a sampling decision alone (``b3: 0``): a new trace
                    trace = _pool.take(32)
                if sampled is None:
                    sampled = self._root_sampled(trace)
                return SpanContext(trace, new_span_id(), parent, sampled)
        ids = _pool.take(32)
        if ids == _ZERO_TRACE:  # pragma: no cover - 2**-128
            return self.start(b"", None)
        return SpanContext(ids, new_span_id(), b"", self._root_sampled(ids))

    def incoming(self, headers: Iterable[tuple[bytes, bytes]]) -> SpanContext:
        """``start`` for a request's header list as it came."""
        traceparent = b""
        b3: list[tuple[bytes, bytes]] = []
        names = self.names
        for name, value in headers:
            low = name.lower()
            if low == b"traceparent":
                traceparent = value
            elif low in names:
                b3.append((low, value))
        return self.start(traceparent, b3)

    def headers(self, span: SpanContext) -> list[tuple[bytes, bytes]]:
        """The fields that carry ``span`` to the app."""
        fields = [(b"traceparent", span.traceparent())]
        if self.b3 == "single":
            fields.append((b"b3", b"-".join([span.trace_id, span.span_id,
                                             b"1" if span.sampled else b"0"])))  # fmt: skip
        elif self.b3 == "multi":
            fields.append((b"x-b3-traceid", span.trace_id))
            fields.append((b"x-b3-spanid", span.span_id))
            fields.append((b"x-b3-sampled", b"1" if span.sampled else b"0"))
        return fields

    def _root_sampled(self, trace: bytes) -> bool:
        return int(trace[16:], 16) < self._bound


def _b3_context(fields: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes, bool | None] | None:
    """Trace id (``b""``: none given), caller's span id and sampling decision
    (``None``: deferred) of B3 headers: the single ``b3`` header, else the
    ``X-B3-*`` ones (openzipkin/b3-propagation)."""
    multi: dict[bytes, bytes] = {}
    for name, value in fields:
        if name == b"b3":
            return _b3_single(value.strip().lower())
        multi[name] = value.strip().lower()
    trace = _b3_trace(multi.get(b"x-b3-traceid", b""))
    span = multi.get(b"x-b3-spanid", b"")
    if trace is None or _HEX16.fullmatch(span) is None or span == _ZERO_SPAN:
        return None
    sampled: bool | None = None
    if multi.get(b"x-b3-flags") == b"1":
        sampled = True  # debug
    elif (state := multi.get(b"x-b3-sampled")) is not None:
        sampled = state in (b"1", b"true", b"d")
    return trace, span, sampled


def _b3_single(value: bytes) -> tuple[bytes, bytes, bool | None] | None:
    parts = value.split(b"-")
    if len(parts) == 1 and value in (b"0", b"1", b"d"):
        return b"", b"", value != b"0"  # a decision without ids
    if len(parts) < 2 or len(parts) > 4:
        return None
    trace = _b3_trace(parts[0])
    span = parts[1]
    if trace is None or _HEX16.fullmatch(span) is None or span == _ZERO_SPAN:
        return None
    sampled: bool | None = None
    if len(parts) > 2:
        if parts[2] not in (b"0", b"1", b"d"):
            return None
        sampled = parts[2] != b"0"
    return trace, span, sampled


def _b3_trace(value: bytes) -> bytes | None:
    """A B3 trace id as 32 hex digits (a 64-bit one is padded on the left)."""
    if _HEX16.fullmatch(value) is not None:
        value = b"0" * 16 + value
    elif _HEX32.fullmatch(value) is None:
        return None
    return None if value == _ZERO_TRACE else value
