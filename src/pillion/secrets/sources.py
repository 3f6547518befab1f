"""Fetching a source's values, and when to fetch them again.

``fetch`` returns the values and their timing: a KV secret or a file is read
again every ``refresh``; a dynamic secret has a lease (renewed by the caller);
a PKI certificate is issued again at ``renew_at`` of its lifetime; environment
variables are read once.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pillion.config.secrets import SecretSourceConfig
from pillion.secrets.vault import VaultClient, VaultRefused

__all__ = ["Fetched", "SourceError", "fetch", "parse_dotenv"]


_ESCAPE = re.compile(r"\\(.)")


class SourceError(Exception):
    """A local source could not be read or parsed; the message is safe to log."""


@dataclass
class Fetched:
    values: dict[str, Any]
    refresh_in: float | None  # seconds until fetched again; None: never (or by lease)
    lease_id: str | None = None
    lease_duration: float = 0.0
    renewable: bool = False
    expires_at: float | None = None  # Unix time the values stop working


async def fetch(
    source: SecretSourceConfig, vault: VaultClient | None, environ: Mapping[str, str]
) -> Fetched:
    kind = source.type
    if kind == "env":
        prefix = source.prefix or ""
        values = {k[len(prefix) :]: v for k, v in environ.items() if k.startswith(prefix)}
        return Fetched(values, None)
    if kind == "file":
        assert source.path is not None
        return Fetched(read_file(source.path), source.refresh)
    if kind == "directory":
        assert source.path is not None
        return Fetched(read_directory(source.path), source.refresh)
    assert vault is not None
    assert source.path is not None
    if kind == "kv":
        return Fetched(await vault.kv(source.path, source.kv_version, source.version),
                       source.refresh)  # fmt: skip
    if kind == "dynamic":
        answer = await vault.read(source.path)
        duration = float(answer.get("lease_duration") or 0)
        return Fetched(
            dict(answer.get("data") or {}),
            None if answer.get("lease_id") else source.refresh,
            lease_id=answer.get("lease_id") or None,
            lease_duration=duration,
            renewable=bool(answer.get("renewable")),
            expires_at=time.time() + duration if duration else None,
        )
    body: dict[str, Any] = {"common_name": source.common_name}
    if source.alt_names:
        body["alt_names"] = ",".join(source.alt_names)
    if source.ip_sans:
        body["ip_sans"] = ",".join(source.ip_sans)
    if source.ttl is not None:
        body["ttl"] = f"{int(source.ttl)}s"
    data = await vault.issue(source.path, body)
    if "certificate" not in data or "private_key" not in data:
        raise VaultRefused(f"POST /v1/{source.path}: no certificate in the answer", 200)
    chain = data.get("ca_chain") or [data.get("issuing_ca", "")]
    data["chain"] = "\n".join([data["certificate"], *[c for c in chain if c]]) + "\n"
    expiration = float(data.get("expiration") or 0)
    now = time.time()
    lifetime = max(0.0, expiration - now)
    return Fetched(data, lifetime * source.renew_at if expiration else source.refresh,
                   expires_at=expiration or None)  # fmt: skip


def read_file(path: str) -> dict[str, Any]:
    """A JSON (``.json``), YAML (``.yaml``, ``.yml``) or dotenv (``.env``) file's keys;
    any other file is one key, ``content``."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    suffix = Path(path).suffix
    try:
        if suffix == ".json":
            parsed = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            parsed = yaml.safe_load(text)
        elif suffix == ".env":
            parsed = parse_dotenv(text)
        else:
            return {"content": text}
    except (ValueError, yaml.YAMLError) as exc:
        where = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None),
                                                        "line", None)  # fmt: skip
        raise SourceError(
            f"cannot parse {path}" + (f" (line {where})" if where else "")
            + f": {type(exc).__name__}"
        ) from None  # fmt: skip
    if not isinstance(parsed, dict):
        raise SourceError(f"{path}: expected a mapping of keys to values")
    return parsed


def read_directory(path: str) -> dict[str, str]:
    """A mounted ConfigMap or Secret: each file is a key (the ``..data`` machinery
    and hidden files are skipped)."""
    values: dict[str, str] = {}
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise SourceError(f"cannot read directory {path}: {exc.strerror}") from None
    for name in names:
        if name.startswith("."):
            continue
        file = Path(path, name)
        if file.is_file():
            try:
                values[name] = file.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise SourceError(f"cannot read {file}: {type(exc).__name__}") from None
    return values


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=value`` lines; ``#`` comments, ``export``, single or double quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise ValueError(f"line {number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = _ESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], value)
        values[key.strip()] = value
    return values
