"""The cookies of the OIDC login, and the return URLs it follows. No I/O.

A cookie's value is sealed with AES-256-GCM: ``v1.<chunks>.<base64url(key id,
nonce, ciphertext)>``. The key comes from a secret by HKDF; the first secret
seals, every secret opens (rotation). The cookie's purpose (session or login) is
the associated data, so one cannot stand in for the other. A value too long for
one cookie is split into ``<name>``, ``<name>_1``, ...; the first says how many
there are, so a stale chunk left from a larger session is never read as part of
this one.

``safe_return`` decides where a user may be sent after login or sign-out: a path
on this host, or a URL on an allowed host; anything else (``//evil.test``,
``/\\evil.test``, ``https:evil.test``, control characters, user info) is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "MIN_SECRET",
    "Sealer",
    "chunk_names",
    "clear_cookie",
    "joined",
    "parse_cookies",
    "safe_return",
    "set_cookie",
    "split",
]

MIN_SECRET = 32  # bytes of a cookie secret
CHUNK = 3800  # characters of a value per cookie: browsers keep 4096 per cookie
MAX_CHUNKS = 8
_VERSION = "v1"
_NONCE = 12
_KEY_ID = 4


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sealer:
    """Seals and opens cookie values with the secrets given (first seals)."""

    def __init__(self, secrets: list[bytes]) -> None:
        if not secrets:
            raise ValueError("no cookie secret")
        self._keys: list[tuple[bytes, AESGCM]] = []
        for secret in secrets:
            if len(secret) < MIN_SECRET:
                raise ValueError(f"a cookie secret needs at least {MIN_SECRET} bytes")
            key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"pillion oidc cookie v1"
            ).derive(secret)
            self._keys.append((hashlib.sha256(key).digest()[:_KEY_ID], AESGCM(key)))

    def seal(self, purpose: str, payload: Mapping[str, object]) -> str:
        key_id, cipher = self._keys[0]
        nonce = os.urandom(_NONCE)
        data = json.dumps(payload, separators=(",", ":")).encode()
        return _b64(key_id + nonce + cipher.encrypt(nonce, data, purpose.encode()))

    def open(self, purpose: str, sealed: str) -> dict[str, Any] | None:
        """The payload, or None: not ours, tampered with, truncated, or sealed with a
        secret no longer listed."""
        try:
            raw = _unb64(sealed)
        except (binascii.Error, ValueError):
            return None
        key_id, nonce, ciphertext = raw[:_KEY_ID], raw[_KEY_ID : _KEY_ID + _NONCE], raw[16:]
        for known, cipher in self._keys:
            if known == key_id:
                try:
                    data = cipher.decrypt(nonce, ciphertext, purpose.encode())
                    payload = json.loads(data)
                except (InvalidTag, ValueError):
                    return None
                return payload if isinstance(payload, dict) else None
        return None


def split(name: str, sealed: str) -> list[tuple[str, str]]:
    """The cookies carrying ``sealed`` under ``name``: (name, value) pairs."""
    parts = [sealed[i : i + CHUNK] for i in range(0, len(sealed), CHUNK)] or [""]
    if len(parts) > MAX_CHUNKS:
        raise ValueError(f"the session is too large for {MAX_CHUNKS} cookies")
    first = f"{_VERSION}.{len(parts)}.{parts[0]}"
    return [(name, first)] + [(f"{name}_{i}", part) for i, part in enumerate(parts[1:], 1)]


def joined(cookies: Mapping[str, str], name: str) -> str | None:
    """The sealed value under ``name`` put back together; None when absent or
    incomplete."""
    first = cookies.get(name)
    if first is None:
        return None
    version, _, rest = first.partition(".")
    count, _, value = rest.partition(".")
    if version != _VERSION or not count.isdigit() or not 1 <= int(count) <= MAX_CHUNKS:
        return None
    parts = [value]
    for index in range(1, int(count)):
        part = cookies.get(f"{name}_{index}")
        if part is None:
            return None
        parts.append(part)
    return "".join(parts)


def chunk_names(cookies: Iterable[str], name: str) -> list[str]:
    """The names among ``cookies`` that are ``name`` or one of its chunks."""
    prefix = name + "_"
    return [
        found
        for found in cookies
        if found == name or (found.startswith(prefix) and found[len(prefix) :].isdigit())
    ]


def parse_cookies(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's cookies by name (every ``Cookie`` field; the first of a name wins)."""
    found: dict[str, str] = {}
    for field, value in headers:
        if len(field) != 6 or field.lower() != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            name, equals, content = pair.strip().partition("=")
            if equals and name and name not in found:
                found[name] = content.strip().strip('"')
    return found


def set_cookie(
    name: str, value: str, *, max_age: int, secure: bool, domain: str | None
) -> tuple[bytes, bytes]:
    attributes = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        attributes.append("Secure")
    if domain:
        attributes.append(f"Domain={domain}")
    return (b"set-cookie", "; ".join(attributes).encode("latin-1"))


def clear_cookie(name: str, *, secure: bool, domain: str | None) -> tuple[bytes, bytes]:
    return set_cookie(name, "", max_age=0, secure=secure, domain=domain)


def safe_return(target: str, own_host: str, allowed_hosts: Iterable[str]) -> str | None:
    """``target`` if a user may be sent there, else None: a path on this host, or
    an http(s) URL whose host is this one or an allowed one."""
    if not target or any(ord(c) < 0x21 or c in "\\\x7f" for c in target):
        return None  # control characters, spaces, backslashes (``/\\evil.test``)
    if target.startswith("/"):
        return None if target.startswith("//") else target
    if not target.startswith(("http://", "https://")):
        return None  # ``https:evil.test``, ``javascript:``, a bare host
    try:
        parts = urlsplit(target)
        host = parts.hostname
    except ValueError:
        return None
    if not host or "@" in parts.netloc:
        return None
    allowed = {own_host.lower().rsplit(":", 1)[0], *(h.lower() for h in allowed_hosts)}
    return target if host.lower() in allowed else None
