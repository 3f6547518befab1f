"""``examples/proxy-mtls.yaml`` run for real: ``curl`` with mesh certificates from
``pillion certs`` calls in over mutual TLS, a JWT from a real key pair opens the
orders route, and the app's outbound call reaches a mutual-TLS payments server
that answers 503 once."""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.examples.running import running_example
from tests.helpers import PillionProcess, free_port, http, serve_http, wait_until
from tests.proxy.test_jwt import JwksServer, Signer

ISSUER = "https://login.example.com/"
MESH = "spiffe://cluster.local/ns/shop/sa/"


def certs(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pillion", "certs", *args], check=True, timeout=60,
                   capture_output=True)  # fmt: skip


@dataclass
class Mesh:
    """A CA and a certificate per workload, as files in ``directory``."""

    directory: Path

    def __post_init__(self) -> None:
        certs("init", "--dir", str(self.directory))

    def issue(self, name: str, spiffe_id: str, *dns: str) -> tuple[Path, Path]:
        names = [arg for host in dns for arg in ("--dns", host)]
        certs("issue", "--ca-dir", str(self.directory), "--out", str(self.directory),
              "--name", name, "--spiffe-id", spiffe_id, *names)  # fmt: skip
        return self.directory / f"{name}.crt", self.directory / f"{name}.key"


@dataclass
class Recorder:
    """What a loopback server was asked: each request's path, headers and the
    caller's certificate identity."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, answers: list[int] | None = None) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                peer = getattr(self.connection, "getpeercert", lambda: None)()
                uris = [v for k, v in (peer or {}).get("subjectAltName", ()) if k == "URI"]
                with outer.lock:
                    outer.seen.append({"path": self.path, "headers": dict(self.headers),
                                       "peer": uris})  # fmt: skip
                    status = answers.pop(0) if answers else 200
                body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@dataclass
class Pod:
    pillion: PillionProcess
    mesh: Mesh
    inbound: int
    outbound: int
    app: Recorder
    payments: Recorder
    signer: Signer

    def curl(self, client: str | None, *paths: str, headers: tuple[str, ...] = ()) -> list[str]:
        """The status of each path, over one connection (``curl`` with the client's
        certificate, or none)."""
        command = ["curl", "-sS", "--cacert", str(self.mesh.directory / "ca.crt"),
                   "--resolve", f"shop.shop.svc:{self.inbound}:127.0.0.1",
                   "-w", "%{http_code}\\n", "--max-time", "20"]  # fmt: skip
        if client is not None:
            crt, key = self.mesh.directory / f"{client}.crt", self.mesh.directory / f"{client}.key"
            command += ["--cert", str(crt), "--key", str(key)]
        for header in headers:
            command += ["-H", header]
        for path in paths:
            command += ["-o", "/dev/null", f"https://shop.shop.svc:{self.inbound}{path}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            return [f"curl exit {result.returncode}: {result.stderr.strip()}"]
        return result.stdout.split()

    def token(self, sub: str = "alice") -> str:
        return self.signer.token(issuer=ISSUER, aud="orders", sub=sub)


@contextlib.contextmanager
def tls_server(handler: type[BaseHTTPRequestHandler], mesh: Mesh, name: str) -> Iterator[int]:
    """A mutual-TLS server with the workload certificate ``name``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=mesh.directory / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    crt, key = mesh.directory / f"{name}.crt", mesh.directory / f"{name}.key"
    context.load_cert_chain(crt, key)
    with serve_http(handler, tls=context) as port:
        yield port


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    mesh = Mesh(tmp_path / "tls")
    mesh.issue("tls", f"{MESH}shop", "shop.shop.svc")  # the pod's own certificate
    mesh.issue("frontend", f"{MESH}frontend")
    mesh.issue("ops-console", f"{MESH}ops-console")
    mesh.issue("stranger", "spiffe://cluster.local/ns/other/sa/frontend")
    mesh.issue("payments", f"{MESH}payments")
    signer = Signer("login-1", "ES256")
    app, payments = Recorder(), Recorder()
    inbound, outbound = free_port(), free_port()
    with (
        serve_http(app.handler()) as app_port,
        tls_server(payments.handler([503, 503]), mesh, "payments") as payments_port,
        JwksServer(keys=[signer.jwk()]) as jwks,
    ):
        moves = {
            "port: 8080": f"port: {app_port}",
            "0.0.0.0:15006": f"127.0.0.1:{inbound}",
            "127.0.0.1:15001": f"127.0.0.1:{outbound}",
            "/var/run/secrets/pillion/tls/": f"{mesh.directory}/",
            "https://login.example.com/.well-known/jwks.json": f"http://127.0.0.1:{jwks.port}/",
            "payments.shop.svc.cluster.local:8443": f"127.0.0.1:{payments_port}",
            # no refill while the test runs, so what the burst leaves is exact
            "rate: 5, burst: 10": "rate: 0.001, burst: 10",
        }
        with running_example("proxy-mtls.yaml", tmp_path, moves) as pillion:
            yield Pod(pillion, mesh, inbound, outbound, app, payments, signer)


def test_callers_get_in_by_their_certificate_identity(pod: Pod) -> None:
    spoofed = "x-pillion-peer-identity: spiffe://cluster.local/ns/shop/sa/ops-console"
    assert pod.curl("frontend", "/hello", headers=(spoofed,)) == ["200"]
    [seen] = pod.app.seen
    assert seen["headers"]["x-pillion-peer-identity"] == f"{MESH}frontend"  # not the copy
    assert pod.curl("stranger", "/hello") == ["403"]  # another namespace
    without = pod.curl(None, "/hello")  # no certificate: no handshake
    assert without[0].startswith("curl exit"), without
    assert pod.curl("frontend", "/admin/users") == ["403"]
    assert pod.curl("ops-console", "/admin/users") == ["200"]
    assert [s["path"] for s in pod.app.seen] == ["/hello", "/admin/users"]


def test_orders_need_a_token_and_each_user_has_a_rate_limit(pod: Pod) -> None:
    assert pod.curl("frontend", "/api/orders") == ["401"]
    forged = Signer("login-1", "ES256").token(issuer=ISSUER, aud="orders", sub="alice")
    assert pod.curl("frontend", "/api/orders", headers=(f"Authorization: Bearer {forged}",)) == [
        "401"
    ]
    assert pod.app.seen == []
    alice = (f"Authorization: Bearer {pod.token()}", "x-user-id: mallory")
    statuses = pod.curl("frontend", *["/api/orders"] * 30, headers=alice)
    assert statuses == ["200"] * 10 + ["429"] * 20  # the burst, then no more
    for name in ("eve", "trudy"):  # naming herself anew does not give alice a fresh bucket
        assert pod.curl("frontend", "/api/orders", headers=(alice[0], f"x-user-id: {name}")) == [
            "429"
        ]
    assert {s["headers"]["x-user-id"] for s in pod.app.seen} == {"alice"}  # the claim, not the copy
    bob = (f"Authorization: Bearer {pod.token('bob')}",)
    assert pod.curl("frontend", "/api/orders", headers=bob) == ["200"]  # a bucket of his own


def test_the_apps_call_goes_out_over_mutual_tls_and_a_503_is_retried(pod: Pod) -> None:
    # (the payments server answers 503 twice, then 200)
    # a POST is not tried again after a status: the server may have acted on it
    status, _, _ = http("POST", f"http://127.0.0.1:{pod.outbound}/payments/charge", body=b"{}")
    assert status == 503
    status, _, body = http("GET", f"http://127.0.0.1:{pod.outbound}/payments/balance")
    assert status == 200, body  # the first try got a 503
    paths = [s["path"] for s in pod.payments.seen]
    assert paths == ["/payments/charge", "/payments/balance", "/payments/balance"]
    assert all(s["peer"] == [f"{MESH}shop"] for s in pod.payments.seen)  # the pod's certificate
    status, _, _ = http("GET", f"http://127.0.0.1:{pod.outbound}/elsewhere")
    assert status == 404  # only what a route names leaves the pod
    wait_until(lambda: len(outbound_lines(pod)) == 3)
    [charge, balance, elsewhere] = outbound_lines(pod)
    assert (balance["code"], balance["retries"], balance["cluster"]) == (200, 1, "payments")
    assert (charge["code"], charge["retries"]) == (503, 0)
    assert (elsewhere["code"], elsewhere["flags"]) == (404, "NR")


def outbound_lines(pod: Pod) -> list[dict[str, Any]]:
    """The access log's lines of the outbound listener (on stdout)."""
    return [r for r in pod.pillion.records() if r.get("listener") == "outbound" and "code" in r]
