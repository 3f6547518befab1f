"""Header rules of a proxy: hop-by-hop fields (RFC 9110 §7.6.1) and lower-casing.

Headers are kept as a list of ``(name, value)`` byte pairs, in arrival order and
with their original case, as llhttp hands them over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = [
    "HOP_BY_HOP",
    "HeaderPairs",
    "Headers",
    "connection_tokens",
    "is_hop_by_hop",
    "lower_name",
]

Headers = list[tuple[bytes, bytes]]
HeaderPairs = Sequence[tuple[bytes, bytes]]
"""Headers to write (lower-case names): any sequence of pairs, a tuple when constant."""

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
"""Fields that describe one connection, never forwarded (RFC 9110 §7.6.1, RFC 9112)."""


def connection_tokens(value: bytes) -> set[bytes]:
    """The lower-cased field names listed in a ``Connection`` header value."""
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def is_hop_by_hop(lower: bytes, named: set[bytes] | frozenset[bytes]) -> bool:
    return lower in HOP_BY_HOP or lower in named


_LOWERED: Final[dict[bytes, bytes]] = {}
_LOWERED_MAX: Final = 1024  # names are the peer's choice: the table stays bounded


def lower_name(name: bytes) -> bytes:
    """``name.lower()``, and the same object each time for a name seen before: a
    lookup instead of a new lower-cased copy per header, and the copy's hash is
    kept for the set lookups that follow."""
    lower = _LOWERED.get(name)
    if lower is None:
        lower = name.lower()
        if len(_LOWERED) < _LOWERED_MAX:
            _LOWERED[name] = lower
    return lower
