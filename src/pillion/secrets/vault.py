"""A Vault / OpenBao HTTP client: login, token renewal, KV v1/v2, leases, PKI.

One ``VaultClient`` holds one token. ``login()`` gets it by the configured
method; ``renew_token()`` extends it. Requests go through ``call``, which turns
every failure into a ``VaultError``: ``VaultUnavailable`` when the server could
not be reached or answered 5xx (worth retrying as is), ``VaultRefused`` for an
answer that says no (403, 404, 400...). Their messages hold the method, the
path, the status and Vault's own error strings, never a token or a secret.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from pillion.config.redaction import redact_in
from pillion.config.secrets import VaultConfig

__all__ = ["Login", "VaultClient", "VaultError", "VaultRefused", "VaultUnavailable"]


class VaultError(Exception):
    """A Vault request failed; the message is safe to log."""


class VaultUnavailable(VaultError):
    """The server could not be reached, timed out, or answered 5xx (or 429)."""


class VaultRefused(VaultError):
    """The server answered, and said no."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Login:
    ttl: float  # seconds the token lives; 0 for a token that never expires
    renewable: bool


class VaultClient:
    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self.address = config.address.rstrip("/")
        self.token: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._kv2_mounts: dict[str, str | None] = {}  # by path read: its KV v2 mount, if one

    async def open(self) -> None:
        context: ssl.SSLContext | bool = True
        if self.config.ca is not None:
            context = ssl.create_default_context(cafile=self.config.ca)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            connector=aiohttp.TCPConnector(ssl=context),
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, auth: bool = True
    ) -> dict[str, Any]:
        """``method /v1/<path>``; the answer's JSON (``{}`` for 204)."""
        assert self._session is not None, "client not open"
        headers = {}
        if auth and self.token is not None:
            headers["X-Vault-Token"] = self.token
        if self.config.namespace:
            headers["X-Vault-Namespace"] = self.config.namespace
        what = f"{method} /v1/{path}"
        try:
            async with self._session.request(
                method, f"{self.address}/v1/{path}", json=body, headers=headers
            ) as answer:
                status = answer.status
                try:
                    document = await answer.json(content_type=None) if status != 204 else {}
                except ValueError:
                    document = None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            problem = redact_in(f"{what}: {type(exc).__name__}: {exc}", self.address)
            raise VaultUnavailable(problem.rstrip(": ")) from None
        if 200 <= status < 300:
            return document if isinstance(document, dict) else {}
        errors = document.get("errors") if isinstance(document, dict) else None
        reason = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
        message = f"{what}: {status}" + (f" {reason}" if reason else "")
        if status >= 500 or status == 429:
            raise VaultUnavailable(message)
        raise VaultRefused(message, status)

    # -- the token --

    async def login(self) -> Login:
        """Get a token by the configured method (token files are re-read each time)."""
        auth = self.config.auth
        mount = (auth.mount or auth.method).strip("/")
        if auth.method == "token":
            assert auth.token_file is not None
            self.token = _read_secret_file(auth.token_file, "token_file")
            data = (await self.call("GET", "auth/token/lookup-self")).get("data") or {}
            return Login(float(data.get("ttl") or 0), bool(data.get("renewable")))
        if auth.method == "approle":
            assert auth.role_id_file is not None
            assert auth.secret_id_file is not None
            body: dict[str, Any] = {
                "role_id": _read_secret_file(auth.role_id_file, "role_id_file"),
                "secret_id": _read_secret_file(auth.secret_id_file, "secret_id_file"),
            }
        else:  # jwt, kubernetes
            token_path = auth.token_path
            assert token_path is not None
            body = {"role": auth.role, "jwt": _read_secret_file(token_path, "token_file")}
        answer = await self.call("POST", f"auth/{mount}/login", body, auth=False)
        granted = answer.get("auth") or {}
        token = granted.get("client_token")
        if not isinstance(token, str) or not token:
            raise VaultRefused(f"POST /v1/auth/{mount}/login: no token in the answer", 200)
        self.token = token
        return Login(float(granted.get("lease_duration") or 0), bool(granted.get("renewable")))

    async def renew_token(self) -> Login:
        answer = await self.call("POST", "auth/token/renew-self", {})
        granted = answer.get("auth") or {}
        return Login(float(granted.get("lease_duration") or 0), bool(granted.get("renewable")))

    # -- secrets --

    async def kv(self, path: str, kv_version: int, version: int | None) -> dict[str, Any]:
        """The keys of a KV secret at ``<mount>/<path>``."""
        mount, _, rest = path.strip("/").partition("/")
        if kv_version == 1:
            return dict((await self.call("GET", f"{mount}/{rest}")).get("data") or {})
        query = f"?version={version}" if version is not None else ""
        data = (await self.call("GET", f"{mount}/data/{rest}{query}")).get("data") or {}
        if data.get("data") is None:  # deleted or destroyed version
            raise VaultRefused(f"GET /v1/{mount}/data/{rest}{query}: no data (deleted?)", 404)
        return dict(data["data"])

    async def read(self, path: str) -> dict[str, Any]:
        """A secret with its lease: the whole answer (``data``, ``lease_id``...)."""
        return await self.call("GET", path.strip("/"))

    async def secret(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """What a Vault Agent template's ``secret`` (or ``pkiCert``) call gets: the
        whole answer for ``path``, read, or with ``params`` written. As Vault Agent
        does, a KV v2 secret may be named without ``data/`` (``secret/app`` is read
        as ``secret/data/app``); ``?version=N`` pins a version."""
        path = path.strip("/")
        if params:
            return await self.call("PUT", path, dict(params))
        bare, mark, query = path.partition("?")
        mount = await self._kv2_mount(bare)
        if mount is not None:
            rest = bare.removeprefix(mount).lstrip("/")
            if not rest.startswith(("data/", "metadata/")) and rest != "data":
                bare = f"{mount}/data/{rest}".rstrip("/")
        return await self.call("GET", bare + mark + query)

    async def _kv2_mount(self, path: str) -> str | None:
        """The KV v2 mount ``path`` is in (``secret``), or ``None``: another engine,
        or the server would not say (then the path is read as it is)."""
        if path not in self._kv2_mounts:
            try:
                answer = await self.call("GET", f"sys/internal/ui/mounts/{path}")
            except VaultRefused:
                answer = {}
            data = answer.get("data") or {}
            options = data.get("options") or {}
            mount = str(data.get("path") or "").strip("/")
            kv2 = data.get("type") == "kv" and str(options.get("version")) == "2"
            self._kv2_mounts[path] = mount if kv2 and mount else None
        return self._kv2_mounts[path]

    async def renew_lease(self, lease_id: str, increment: float) -> tuple[float, bool]:
        answer = await self.call(
            "PUT", "sys/leases/renew", {"lease_id": lease_id, "increment": int(increment)}
        )
        return float(answer.get("lease_duration") or 0), bool(answer.get("renewable"))

    async def issue(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A PKI certificate: the answer's ``data`` (certificate, private_key...)."""
        return dict((await self.call("POST", path.strip("/"), body)).get("data") or {})


def _read_secret_file(path: str, field: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise VaultRefused(f"cannot read {field} {path}: {exc.strerror}", 0) from None
    if not value:
        raise VaultRefused(f"{field} {path} is empty", 0)
    return value
