"""HTTP syntax the proxy models share: header names and ``Upgrade`` protocols.

Rules over strings only, each written once here (RFC 9110 §5.6.2 tokens).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator

__all__ = ["HEADER_NAME", "GrpcCode", "UpgradeProtocol", "check_header_name"]

_TCHARS = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"  # one or more tchar: a token (RFC 9110 §5.6.2)

HEADER_NAME = rf"^{_TCHARS}$"
"""The pattern of a header name: one token (RFC 9110 §5.1)."""

_PROTECTED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)


def check_header_name(name: str) -> None:
    """Refuse a header a config may not set or remove: not a token, or one of the
    framing and routing headers that Pillion writes itself."""
    if not re.fullmatch(HEADER_NAME, name):
        raise ValueError(f"{name!r} is not a header name")
    if name.lower() in _PROTECTED:
        raise ValueError(f"{name!r} is framing or routing; Pillion writes it itself")


_UPGRADE_PROTOCOL = re.compile(rf"{_TCHARS}(?:/{_TCHARS})?")


def _upgrade_protocol(value: str) -> str:
    if not _UPGRADE_PROTOCOL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an upgrade protocol: a token, or token/version "
            "(RFC 9110 §7.8), e.g. `websocket`"
        )
    protocol = value.lower()
    if protocol.partition("/")[0] == "h2c":
        raise ValueError(
            "h2c is never allowed: HTTP/2 comes by prior knowledge or ALPN "
            "(RFC 9113 §3.1 deprecates the h2c upgrade)"
        )
    return protocol


UpgradeProtocol = Annotated[str, AfterValidator(_upgrade_protocol)]
"""A protocol a request may ``Upgrade`` to: ``name`` or ``name/version``, each an
RFC 9110 token, in lower case (protocol names are case-insensitive); never ``h2c``."""


GrpcCode = Literal[
    "cancelled",
    "unknown",
    "invalid-argument",
    "deadline-exceeded",
    "not-found",
    "already-exists",
    "permission-denied",
    "resource-exhausted",
    "failed-precondition",
    "aborted",
    "out-of-range",
    "unimplemented",
    "internal",
    "unavailable",
    "data-loss",
    "unauthenticated",
]
"""A gRPC status by name, as a retry policy lists it (Envoy's spelling)."""
