"""API keys: a file of keys (hashed at rest, or plain), checked per request.

The file has one key per line, optionally followed by a name for the caller
(passed to the app); ``#`` starts a comment::

    sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  billing
    a-plain-key-is-hashed-when-loaded                                         batch

Only SHA-256 digests are kept in memory; a presented key is hashed and looked
up. The key is removed before the request goes on (header and query
parameter alike, so neither the app nor the access log sees it). The file is
re-read when it changes; a file that cannot be used keeps the previous keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from urllib.parse import unquote_to_bytes

from prometheus_client import CollectorRegistry, Counter

from pillion.config.proxy import ApiKeysConfig
from pillion.http.request import RequestHead
from pillion.telemetry import Metrics

__all__ = ["ApiKeys", "ApiKeysError", "parse_key_file"]

log = logging.getLogger("pillion.proxy")

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


class ApiKeysError(ValueError):
    """A key file that cannot be used; says which line, never a key."""


def parse_key_file(text: str) -> dict[bytes, str]:
    """SHA-256 digest of each key -> the caller's name (may be empty)."""
    keys: dict[bytes, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, _, name = line.partition(" ")
        name = name.strip()
        if name and not re.fullmatch(r"[A-Za-z0-9._:@/-]{1,128}", name):
            raise ApiKeysError(f"line {number}: the name has characters other than A-Za-z0-9._:@/-")
        hashed = _DIGEST.match(key)
        if hashed:
            digest = bytes.fromhex(hashed.group(1))
        elif key.startswith("sha256:"):
            raise ApiKeysError(f"line {number}: sha256: needs 64 lower-case hex digits")
        elif len(key) < 16:
            raise ApiKeysError(f"line {number}: a key shorter than 16 characters is too guessable")
        else:
            digest = hashlib.sha256(key.encode()).digest()
        keys[digest] = name
    if not keys:
        raise ApiKeysError("no keys in the file")
    return keys


class ApiKeyFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rejected = Counter(
            "pillion_api_key_rejected",
            "Requests refused (401) for their API key, by listener and reason (missing, invalid).",
            ["listener", "reason"],
            registry=registry,
        )
        self.reloads = Counter(
            "pillion_api_key_reloads",
            "Loads of an API key file, by result (ok, error: the previous keys are kept).",
            ["listener", "result"],
            registry=registry,
        )


class ApiKeys:
    """A listener's API keys and where requests carry them."""

    def __init__(self, config: ApiKeysConfig, listener: str, metrics: Metrics) -> None:
        families = metrics.family("api_keys", ApiKeyFamilies)
        self.path = config.file
        self.required = config.required
        self.header = config.header.lower().encode()
        self.parameter = config.query_parameter.encode() if config.query_parameter else None
        self.name_header = config.name_header.lower().encode()
        self.missing = families.rejected.labels(listener, "missing")
        self.invalid = families.rejected.labels(listener, "invalid")
        self._ok = families.reloads.labels(listener, "ok")
        self._error = families.reloads.labels(listener, "error")
        self._listener = listener
        self._keys: dict[bytes, str] = {}
        self._stamp: tuple[int, int, int, int] | None = None

    def load(self) -> None:
        """Read the file if it changed; ``ApiKeysError`` (first load only) when unusable."""
        first = self._stamp is None
        try:
            st = os.stat(self.path)
            stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            with open(self.path, encoding="utf-8") as file:
                keys = parse_key_file(file.read())
        except (OSError, UnicodeDecodeError, ApiKeysError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            message = f"API key file {self.path}: {reason}"
            if first:
                raise ApiKeysError(message) from None
            self._error.inc()
            log.error(
                "API key file unusable; the previous keys are kept",
                extra={"listener": self._listener, "error": message},
            )
            return
        self._keys = keys
        self._ok.inc()
        if not first:
            log.info("API keys reloaded", extra={"listener": self._listener, "keys": len(keys)})

    def requires(self, route_says: bool | None) -> bool:
        return self.required if route_says is None else route_says

    def check(self, head: RequestHead) -> tuple[bool, str | None]:
        """(key present, caller name or None when the key is unknown). The key is
        taken out of the request: its header dropped later, its query parameter now."""
        presented = b""
        for name, value in head.headers:
            if name.lower() == self.header:
                presented = value.strip()
                break
        if self.parameter is not None and b"?" in head.target:
            head.target, from_query = _take_parameter(head.target, self.parameter)
            presented = presented or from_query
        if not presented:
            return False, None
        return True, self._keys.get(hashlib.sha256(presented).digest())


def _take_parameter(target: bytes, parameter: bytes) -> tuple[bytes, bytes]:
    """The target without ``parameter`` in its query, and the parameter's value."""
    path, _, query = target.partition(b"?")
    kept, value = [], b""
    for pair in query.split(b"&"):
        name, _, raw = pair.partition(b"=")
        if unquote_to_bytes(name) == parameter:
            value = value or unquote_to_bytes(raw)
        else:
            kept.append(pair)
    return (path + b"?" + b"&".join(kept) if kept else path), value
