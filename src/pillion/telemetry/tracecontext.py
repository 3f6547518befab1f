"""W3C Trace Context (``traceparent``) and request ids: validate or start one.

Ids come from ``random.getrandbits`` (not a syscall per request); they identify,
they do not protect, so they need not be cryptographic.
"""

from __future__ import annotations

import re
from random import getrandbits, randbytes

__all__ = ["new_request_id", "new_traceparent", "trace_id", "valid_request_id",
           "valid_traceparent"]  # fmt: skip

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, variant RFC 4122
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


def new_traceparent() -> bytes:
    """A new sampled trace: ``00-<32 hex>-<16 hex>-01``."""
    ids = randbytes(24).hex().encode()  # noqa: S311 - ids identify, they do not protect
    if ids.startswith(b"0" * 32) or ids.endswith(b"0" * 16):  # pragma: no cover - 2**-64
        return new_traceparent()
    return b"00-%s-%s-01" % (ids[:32], ids[32:])


def valid_request_id(value: bytes) -> bool:
    """Visible ASCII, 1-200 bytes: safe to forward and to log."""
    return _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> bytes:
    """A random (version 4) UUID in its text form."""
    n = getrandbits(128) & _UUID4_CLEAR | _UUID4_SET
    h = b"%032x" % n
    return b"%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])
