"""TLS termination, mTLS identities and authorization, SNI, certificate reload:
real handshakes with ``curl``, ``openssl s_client`` and Python's ssl."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from pillion.tls.devca import Issued, issue, new_ca
from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    json_lines,
    metric_value,
    running_pillion,
    wait_until,
)
from tests.proxy.harness import Client, ScriptedUpstream, get, scripted_upstream

SHOP = "spiffe://cluster.local/ns/shop/sa/checkout"
ADMIN = "spiffe://cluster.local/ns/shop/sa/admin"
OUTSIDER = "spiffe://cluster.local/ns/other/sa/intruder"


@dataclass
class Pki:
    directory: Path
    ca: Issued

    def write(self, name: str, issued: Issued) -> tuple[Path, Path]:
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        key.chmod(0o600)
        return cert, key

    def client(self, name: str, **kwargs: object) -> tuple[Path, Path]:
        return self.write(name, issue(self.ca, **kwargs))  # type: ignore[arg-type]

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"


@dataclass
class Secured:
    pillion: PillionProcess
    pki: Pki
    app: ScriptedUpstream
    mtls: int  # client certificate required; namespace shop allowed
    optional: int  # client certificate optional; no authorization
    sni: int  # two certificates chosen by SNI; reloaded in tests
    out: int  # outbound listener whose clusters speak (m)TLS to the mtls listener
    access_log: Path

    def metrics(self) -> bytes:
        return http("GET", f"{self.pillion.status_url}/metrics")[2]

    def access_records(self) -> list[dict[str, object]]:
        return json_lines(self.access_log)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("tls")
    ca = new_ca()
    pki = Pki(directory, ca)
    pki.ca_file.write_bytes(ca.cert_pem)
    server_cert, server_key = pki.write("server", issue(ca, dns_names=("localhost",),
                                                       ip_addresses=("127.0.0.1",)))  # fmt: skip
    other_cert, other_key = pki.write("other", issue(ca, dns_names=("other.test",)))
    sni_cert, sni_key = pki.write("sni", issue(ca, dns_names=("localhost",)))
    caller_cert, caller_key = pki.write("caller", issue(ca, spiffe_id=SHOP))
    stranger_ca = directory / "stranger-ca.crt"
    stranger_ca.write_bytes(new_ca("Someone else's CA").cert_pem)
    mtls, optional, sni, out = free_port(), free_port(), free_port(), free_port()
    h1tls = free_port()
    access_log = directory / "access.log"
    with scripted_upstream() as app:
        proxy = f"""
proxy:
  access_log: {{path: {access_log}, flush_interval: 10ms}}
  inbound:
    - name: mtls
      listen: 127.0.0.1:{mtls}
      tls:
        certificates: [{{cert: {server_cert}, key: {server_key}}}]
        client_ca: {pki.ca_file}
      authorization: {{identity_prefixes: ["spiffe://cluster.local/ns/shop/"]}}
      routes:
        - {{match: {{prefix: /admin/}}, authorization: {{identities: ["{ADMIN}"]}}}}
        - {{match: {{prefix: /}}}}
    - name: optional
      listen: 127.0.0.1:{optional}
      tls:
        certificates: [{{cert: {server_cert}, key: {server_key}}}]
        client_ca: {pki.ca_file}
        client_certificate: optional
      routes:
        - match: {{prefix: /limited/}}
          rate_limit: {{rate: 0.01, burst: 2, key: identity}}
        - match: {{prefix: /}}
    - name: h1tls
      listen: 127.0.0.1:{h1tls}
      protocols: [http1]
      tls:
        certificates: [{{cert: {server_cert}, key: {server_key}}}]
    - name: sni
      listen: 127.0.0.1:{sni}
      tls:
        certificates:
          - {{cert: {sni_cert}, key: {sni_key}}}
          - {{cert: {other_cert}, key: {other_key}}}
        reload_interval: 100ms
        handshake_timeout: 500ms
  outbound:
    - name: out
      listen: 127.0.0.1:{out}
      routes:
        - {{match: {{prefix: /good/}}, cluster: good}}
        - {{match: {{prefix: /byid/}}, cluster: byid}}
        - {{match: {{prefix: /wrongid/}}, cluster: wrongid}}
        - {{match: {{prefix: /anon/}}, cluster: anon}}
        - {{match: {{prefix: /stranger/}}, cluster: stranger}}
        - {{match: {{prefix: /auto-h2/}}, cluster: auto-h2}}
        - {{match: {{prefix: /auto-h1/}}, cluster: auto-h1}}
  clusters:
    - name: good
      endpoints: ["127.0.0.1:{mtls}"]
      tls: {{ca: {pki.ca_file}, cert: {caller_cert}, key: {caller_key}, server_name: localhost}}
    - name: byid
      endpoints: ["127.0.0.1:{mtls}"]
      tls: {{ca: {pki.ca_file}, cert: {caller_cert}, key: {caller_key}, identities: [localhost]}}
    - name: wrongid
      endpoints: ["127.0.0.1:{mtls}"]
      tls:
        ca: {pki.ca_file}
        cert: {caller_cert}
        key: {caller_key}
        identities: ["spiffe://cluster.local/ns/pay/sa/api"]
    - name: anon
      endpoints: ["127.0.0.1:{mtls}"]
      tls: {{ca: {pki.ca_file}, server_name: localhost}}
    - name: auto-h2
      endpoints: ["127.0.0.1:{mtls}"]
      protocol: auto
      tls: {{ca: {pki.ca_file}, cert: {caller_cert}, key: {caller_key}, server_name: localhost}}
    - name: auto-h1
      endpoints: ["127.0.0.1:{h1tls}"]
      protocol: auto
      tls: {{ca: {pki.ca_file}, server_name: localhost}}
    - name: stranger
      endpoints: ["127.0.0.1:{mtls}"]
      tls: {{ca: {stranger_ca}, cert: {caller_cert}, key: {caller_key}, server_name: localhost}}
"""
        with running_pillion(directory, proxy, app.port) as process:
            yield Secured(process, pki, app, mtls, optional, sni, out, access_log)


def curl(
    port: int,
    path: str = "/",
    *,
    cert: tuple[Path, Path] | None,
    pki: Pki,
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    args = ["curl", "-s", "--cacert", str(pki.ca_file), "-w", "\n%{http_code}", *extra]
    if cert is not None:
        args += ["--cert", str(cert[0]), "--key", str(cert[1])]
    return subprocess.run(
        [*args, f"https://localhost:{port}{path}"], capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip


def answered(result: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    body, _, code = result.stdout.rpartition("\n")
    return int(code), body


def handshake_errors(secured: Secured, listener: str, reason: str) -> float:
    series = f'pillion_tls_handshake_errors_total{{listener="{listener}",reason="{reason}"}}'
    return metric_value(secured.metrics(), series) or 0.0


def test_the_callers_identity_reaches_the_app(secured: Secured) -> None:
    cert = secured.pki.client("shop", spiffe_id=SHOP)
    code, body = answered(curl(secured.mtls, "/orders", cert=cert, pki=secured.pki))
    assert code == 200
    headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert headers["x-pillion-peer-identity"] == SHOP
    assert headers["x-forwarded-proto"] == "https"


def test_http2_by_alpn_carries_the_callers_identity(secured: Secured) -> None:
    cert = secured.pki.client("shop-h2", spiffe_id=SHOP)
    spoof = (
        "--http2",
        "-H",
        f"x-pillion-peer-identity: {ADMIN}",
        "-w",
        "\\n%{http_code} %{http_version}",
    )
    result = curl(secured.mtls, "/h2", cert=cert, pki=secured.pki, extra=spoof)
    body, _, tail = result.stdout.rpartition("\n")
    assert tail == "200 2", result.stdout  # HTTP/2, by ALPN
    values = [v for k, v in json.loads(body)["headers"] if k.lower() == "x-pillion-peer-identity"]
    assert values == [SHOP]
    offered = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{secured.optional}", "-alpn",
         "h2,http/1.1", "-CAfile", str(secured.pki.ca_file)],
        input=b"", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    # bytes: s_client also prints what the server sends at once (HTTP/2's SETTINGS)
    assert b"ALPN protocol: h2" in offered.stdout


def test_an_http2_caller_outside_the_allow_list_gets_403(secured: Secured) -> None:
    outsider = secured.pki.client("outsider-h2", spiffe_id=OUTSIDER)
    result = curl(secured.mtls, "/h2", cert=outsider, pki=secured.pki, extra=("--http2",))
    assert answered(result)[0] == 403


def test_a_spoofed_identity_header_is_stripped(secured: Secured) -> None:
    cert = secured.pki.client("shop2", spiffe_id=SHOP)
    spoof = ("-H", f"x-pillion-peer-identity: {ADMIN}")
    code, body = answered(curl(secured.mtls, "/", cert=cert, pki=secured.pki, extra=spoof))
    assert code == 200
    values = [v for k, v in json.loads(body)["headers"] if k.lower() == "x-pillion-peer-identity"]
    assert values == [SHOP]
    # no certificate (optional listener): no identity, and the forged one is gone too
    code, body = answered(curl(secured.optional, "/", cert=None, pki=secured.pki, extra=spoof))
    assert code == 200
    names = [k.lower() for k, _ in json.loads(body)["headers"]]
    assert "x-pillion-peer-identity" not in names


def test_identity_falls_back_to_dns_name_then_common_name(secured: Secured) -> None:
    by_dns = secured.pki.client("dns", dns_names=("billing.shop.svc",), common_name="ignored")
    by_cn = secured.pki.client("cn", common_name="legacy-batch-job")
    for cert, expected in ((by_dns, "billing.shop.svc"), (by_cn, "legacy-batch-job")):
        code, body = answered(curl(secured.optional, "/", cert=cert, pki=secured.pki))
        assert code == 200
        headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert headers["x-pillion-peer-identity"] == expected


def test_an_identity_outside_the_allow_list_gets_403(secured: Secured) -> None:
    outsider = secured.pki.client("outsider", spiffe_id=OUTSIDER)
    before = len(secured.app.requests)
    code, body = answered(curl(secured.mtls, "/", cert=outsider, pki=secured.pki))
    assert (code, body) == (403, "caller not allowed\n")
    # allowed on the listener, but the route wants the admin only
    shop = secured.pki.client("shop3", spiffe_id=SHOP)
    assert answered(curl(secured.mtls, "/admin/users", cert=shop, pki=secured.pki))[0] == 403
    admin = secured.pki.client("admin", spiffe_id=ADMIN)
    assert answered(curl(secured.mtls, "/admin/users", cert=admin, pki=secured.pki))[0] == 200
    assert len(secured.app.requests) == before + 1  # the denied ones never reached the app
    series = (
        'pillion_requests_total{cluster="",code="403",flags="UAEX",grpc_status="",listener="mtls",'
        'method="GET",route="0"}'
    )
    assert metric_value(secured.metrics(), series) == 1.0
    wait_until(
        lambda: any(
            r["code"] == 403 and r["identity"] == OUTSIDER and r["flags"] == "UAEX"
            for r in secured.access_records()
        )
    )


def test_no_client_certificate_where_required_fails_the_handshake(secured: Secured) -> None:
    before = handshake_errors(secured, "mtls", "peer_did_not_return_a_certificate")
    result = curl(secured.mtls, "/", cert=None, pki=secured.pki)
    assert result.returncode != 0
    assert handshake_errors(secured, "mtls", "peer_did_not_return_a_certificate") == before + 1


def test_a_certificate_from_another_ca_or_expired_is_refused(secured: Secured) -> None:
    stranger_ca = new_ca("Someone else's CA")
    stranger = secured.pki.write("stranger", issue(stranger_ca, spiffe_id=SHOP))
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
    expired = secured.pki.write("expired", issue(secured.pki.ca, spiffe_id=SHOP, days=1,
                                                 not_before=long_ago))  # fmt: skip
    before = handshake_errors(secured, "mtls", "certificate_verify_failed")
    for cert in (stranger, expired):
        assert curl(secured.mtls, "/", cert=cert, pki=secured.pki).returncode != 0
    assert handshake_errors(secured, "mtls", "certificate_verify_failed") == before + 2


def test_tls_1_0_and_1_1_are_refused(secured: Secured) -> None:
    for version in ("-tls1", "-tls1_1"):
        result = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{secured.optional}", version,
             "-cipher", "DEFAULT:@SECLEVEL=0"],
            input="", capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert "Cipher is (NONE)" in result.stdout or result.returncode != 0, result.stdout
    assert handshake_errors(secured, "optional", "unsupported_protocol") == 2.0
    modern = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{secured.optional}", "-tls1_2",
         "-alpn", "http/1.1", "-CAfile", str(secured.pki.ca_file)],
        input="", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "Protocol  : TLSv1.2" in modern.stdout
    assert "ALPN protocol: http/1.1" in modern.stdout
    assert "Verify return code: 0 (ok)" in modern.stdout


def _served_names(port: int, server_name: str, ca: Path) -> list[str]:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    return san.value.get_values_for_type(x509.DNSName)


def test_sni_picks_the_certificate(secured: Secured) -> None:
    assert _served_names(secured.sni, "other.test", secured.pki.ca_file) == ["other.test"]
    assert _served_names(secured.sni, "localhost", secured.pki.ca_file) == ["localhost"]
    assert _served_names(secured.sni, "unknown.test", secured.pki.ca_file) == ["localhost"]


def _serial(port: int, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 "), response[:100]
    return x509.load_der_x509_certificate(der).serial_number


def _replace_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(path.name + ".new")
    temp.write_bytes(data)
    os.replace(temp, path)


def test_certificates_are_reloaded_under_load_without_a_failed_request(secured: Secured) -> None:
    pki, port = secured.pki, secured.sni
    cert, key = pki.directory / "sni.crt", pki.directory / "sni.key"
    failures: list[str] = []
    served = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal served
        while not stop.is_set():
            try:
                _serial(port, pki.ca_file)
                served += 1
            except (OSError, AssertionError) as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    serials = []
    try:
        for _ in range(3):
            fresh = issue(pki.ca, dns_names=("localhost",))
            serials.append(x509.load_pem_x509_certificate(fresh.cert_pem).serial_number)
            # key first, then the certificate: in between, the pair does not match
            # and the reload is refused; the next one succeeds
            _replace_atomically(key, fresh.key_pem)
            _replace_atomically(cert, fresh.cert_pem)
            wait_until(lambda: _serial(port, pki.ca_file) == serials[-1])
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert served > 0
    reloads = 'pillion_certificate_reloads_total{listener="sni",result="ok"}'
    assert (metric_value(secured.metrics(), reloads) or 0) >= 3


def test_a_garbage_certificate_keeps_the_old_one(secured: Secured) -> None:
    pki, port = secured.pki, secured.sni
    cert = pki.directory / "sni.crt"
    serving = _serial(port, pki.ca_file)
    good = cert.read_bytes()
    errors = 'pillion_certificate_reloads_total{listener="sni",result="error"}'
    before = metric_value(secured.metrics(), errors) or 0
    _replace_atomically(cert, b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    wait_until(lambda: (metric_value(secured.metrics(), errors) or 0) > before)
    assert _serial(port, pki.ca_file) == serving  # still the old certificate
    failed = secured.pillion.wait_for_log(
        "certificate reload failed; the previous certificates keep serving"
    )
    assert failed["listener"] == "sni"
    assert "sni.crt" in failed["error"]
    _replace_atomically(cert, good)


def test_certificate_expiry_is_exported(secured: Secured) -> None:
    metrics = secured.metrics()
    leaf = x509.load_pem_x509_certificate((secured.pki.directory / "server.crt").read_bytes())
    series = 'pillion_certificate_expiry_timestamp_seconds{kind="server",listener="mtls"}'
    assert metric_value(metrics, series) == leaf.not_valid_after_utc.timestamp()
    ca = x509.load_pem_x509_certificate(secured.pki.ca_file.read_bytes())
    series = 'pillion_certificate_expiry_timestamp_seconds{kind="client_ca",listener="mtls"}'
    assert metric_value(metrics, series) == ca.not_valid_after_utc.timestamp()
    promtool = shutil.which("promtool")
    assert promtool
    check = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    assert (check.returncode, check.stdout + check.stderr) == (0, b"")


def test_an_unreadable_certificate_stops_the_start(tmp_path: Path) -> None:
    proxy = f"""
proxy:
  inbound:
    - listen: 127.0.0.1:{free_port()}
      tls: {{certificates: [{{cert: {tmp_path}/missing.crt, key: {tmp_path}/missing.key}}]}}
"""
    with (
        pytest.raises(AssertionError, match="exited 1") as failure,
        running_pillion(tmp_path, proxy),
    ):
        pass
    assert "missing.crt" in str(failure.value)


def test_a_rate_limit_keyed_by_identity_gives_each_caller_its_bucket(secured: Secured) -> None:
    first = secured.pki.client("bucket-a", spiffe_id="spiffe://cluster.local/ns/a/sa/one")
    second = secured.pki.client("bucket-b", spiffe_id="spiffe://cluster.local/ns/b/sa/two")

    def codes(cert: tuple[Path, Path], count: int) -> list[int]:
        return [
            answered(curl(secured.optional, "/limited/x", cert=cert, pki=secured.pki))[0]
            for _ in range(count)
        ]

    assert codes(first, 3) == [200, 200, 429]
    assert codes(second, 3) == [200, 200, 429]  # its own bucket, though from the same address


def test_outbound_mtls_presents_the_workload_certificate(secured: Secured) -> None:
    """App -> outbound (plain) -> cluster over mTLS -> the mtls listener -> app: the
    receiving side sees the calling workload's identity."""
    client = Client(secured.out)
    for path in ("/good/x", "/byid/x"):
        response = client.request(get(path))
        assert response.status == 200, response.body
        pairs = response.json()["headers"]
        assert isinstance(pairs, list)
        headers = {k.lower(): v for k, v in pairs}
        assert headers["x-pillion-peer-identity"] == SHOP
        assert headers["x-forwarded-proto"] == "https"
    client.close()


def test_outbound_tls_refuses_the_wrong_server(secured: Secured) -> None:
    client = Client(secured.out)
    wrong = client.request(get("/wrongid/x"))
    assert wrong.status == 503
    assert wrong.body == b"upstream identity not allowed: localhost\n"
    stranger = Client(secured.out).request(get("/stranger/x"))
    assert stranger.status == 503
    assert b"CERTIFICATE_VERIFY_FAILED" in stranger.body
    # no client certificate: the server refuses it (after the client's side is done)
    anonymous = Client(secured.out).request(get("/anon/x"))
    assert anonymous.status in (502, 503)
    client.close()
    metrics = secured.metrics()
    caller = x509.load_pem_x509_certificate((secured.pki.directory / "caller.crt").read_bytes())
    series = 'pillion_cluster_certificate_expiry_timestamp_seconds{cluster="good",kind="client"}'
    assert metric_value(metrics, series) == caller.not_valid_after_utc.timestamp()
    for cluster in ("wrongid", "stranger"):
        series = f'pillion_cluster_connect_errors_total{{cluster="{cluster}"}}'
        assert (metric_value(metrics, series) or 0) >= 1


def test_a_client_that_never_completes_the_handshake_is_cut_off(secured: Secured) -> None:
    before = handshake_errors(secured, "sni", "timeout")
    with socket.create_connection(("127.0.0.1", secured.sni), timeout=10) as silent:
        silent.settimeout(10)
        assert silent.recv(1) == b""  # closed by Pillion after handshake_timeout
    wait_until(lambda: handshake_errors(secured, "sni", "timeout") == before + 1)


def test_plain_http_to_a_tls_port_is_refused_and_counted(secured: Secured) -> None:
    before = handshake_errors(secured, "sni", "http_request")
    with socket.create_connection(("127.0.0.1", secured.sni), timeout=10) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        try:
            while chunk := plain.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/1.1 200" not in data
    wait_until(lambda: handshake_errors(secured, "sni", "http_request") == before + 1)


def test_a_cluster_on_auto_speaks_what_alpn_chose(secured: Secured) -> None:
    for path, listener, protocol in (
        ("/auto-h2/x", "mtls", "HTTP/2"),  # the listener offers h2: chosen
        ("/auto-h1/x", "h1tls", "HTTP/1.1"),  # only http/1.1 offered: HTTP/1.1 then
    ):
        client = Client(secured.out)
        for _ in range(2):  # the second on the pooled connection
            response = client.request(get(path))
            assert response.status == 200, response.body
        client.close()

        def logged(path: str = path, listener: str = listener) -> list[dict[str, object]]:
            return [
                r
                for r in secured.access_records()
                if r["path"] == path and r["listener"] == listener
            ]

        wait_until(lambda logged=logged: len(logged()) == 2)  # type: ignore[misc]
        assert {r["protocol"] for r in logged()} == {protocol}
