"""Fetching a source's values, and when to fetch them again.

``fetch`` returns the values and their timing: a KV secret or a file is read
again every ``refresh``; a dynamic secret has a lease (renewed by the caller);
a PKI certificate is issued again at ``renew_at`` of its lifetime; environment
variables are read once. A ``syntax: go`` template's Vault request gives Vault's
whole answer, as Vault Agent's templates see it: with a lease, renewed by the
caller; a certificate without one, asked for again at 2/3 of its lifetime; else
read again every ``static_secret_render_interval``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pillion.config.secrets import SecretSourceConfig, VaultRequest
from pillion.render.sources import SourceError, read_source
from pillion.secrets.vault import VaultClient, VaultRefused

__all__ = ["CERTIFICATE_RENEW_AT", "Fetched", "SourceError", "fetch"]

CERTIFICATE_RENEW_AT = 2 / 3  # of a certificate's lifetime, for one a template asked for


@dataclass
class Fetched:
    values: dict[str, Any]
    refresh_in: float | None  # seconds until fetched again; None: never (or by lease)
    lease_id: str | None = None
    lease_duration: float = 0.0
    renewable: bool = False
    expires_at: float | None = None  # Unix time the values stop working


async def fetch(
    source: SecretSourceConfig | VaultRequest,
    vault: VaultClient | None,
    environ: Mapping[str, str],
) -> Fetched:
    if isinstance(source, VaultRequest):
        assert vault is not None
        return await _request(source, vault)
    kind = source.type
    if kind in ("env", "file", "directory"):
        return Fetched(read_source(source, environ), None if kind == "env" else source.refresh)
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


async def _request(request: VaultRequest, vault: VaultClient) -> Fetched:
    answer = await vault.secret(request.path, dict(request.params))
    duration = float(answer.get("lease_duration") or 0)
    now = time.time()
    if answer.get("lease_id") and duration:
        renewable = bool(answer.get("renewable"))
        return Fetched(answer, None, lease_id=answer["lease_id"], lease_duration=duration,
                       renewable=renewable, expires_at=now + duration)  # fmt: skip
    data = answer.get("data")
    expiration = data.get("expiration") if isinstance(data, dict) else None
    if isinstance(expiration, int | float) and expiration > now:  # a certificate
        lifetime = expiration - now
        return Fetched(answer, lifetime * CERTIFICATE_RENEW_AT, expires_at=float(expiration))
    interval = vault.config.static_secret_render_interval
    return Fetched(answer, interval, expires_at=now + duration if duration else None)
