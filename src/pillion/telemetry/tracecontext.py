"""W3C Trace Context (``traceparent``) and request ids: validate or start one.

Ids are cut from a pool of random hex digits, refilled from ``os.urandom`` 4 KiB at
a time: one system call and one ``hex`` for about a hundred requests' ids, no
formatting per request (``random.randbytes`` costs ten times the instructions of
the kernel's generator here). A forked child starts with an empty pool, so two
workers never hand out the same ids.
"""

from __future__ import annotations

import os
import re

__all__ = ["new_request_id", "new_traceparent", "trace_id", "valid_request_id",
           "valid_traceparent"]  # fmt: skip

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_POOL_BYTES = 4096
# The digit that carries the RFC 4122 variant (10xx), by the random digit it replaces.
_VARIANT = {digit: b"89ab"[i & 3 : (i & 3) + 1] for i, digit in enumerate(b"0123456789abcdef")}
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,200}")


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


_pool = _HexPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.empty)


def new_traceparent() -> bytes:
    """A new sampled trace: ``00-<32 hex>-<16 hex>-01``."""
    ids = _pool.take(48)
    if ids.startswith(b"0" * 32) or ids.endswith(b"0" * 16):  # pragma: no cover - 2**-64
        return new_traceparent()
    return b"".join([b"00-", ids[:32], b"-", ids[32:], b"-01"])


def valid_request_id(value: bytes) -> bool:
    """Visible ASCII, 1-200 bytes: safe to forward and to log."""
    return _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> bytes:
    """A random (version 4) UUID in its text form."""
    h = _pool.take(32)
    return b"".join(
        [h[:8], b"-", h[8:12], b"-4", h[13:16], b"-", _VARIANT[h[16]], h[17:20], b"-", h[20:]]
    )
