"""Secrets end to end: a real Pillion against a real OpenBao dev server.

Init mode (``pillion init``) and sidecar mode (``pillion run``) with KV v1 and
v2, AppRole, JWT and token logins, PKI, token renewal and re-login, outages,
and the faults the issue lists. Every test also checks that no secret value
reaches Pillion's output.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers import (
    PillionProcess,
    free_port,
    http,
    metric_value,
    running_pillion,
    wait_until,
    write_config,
)
from tests.secrets.servers import OpenBao, Postgres, TokenReviews, service_account_token

PASSWORD = "s3cr3t-Pa55word-in-kv"


def approle(openbao: OpenBao, tmp_path: Path, **ttls: str) -> str:
    """AppRole login config (role and secret ids in files), allowed to read all."""
    openbao.write_policy("reader", 'path "*" { capabilities = ["read", "create", "update"] }')
    role_id, secret_id = openbao.enable_approle("app", ["reader"], **ttls)
    (tmp_path / "role-id").write_text(role_id)
    (tmp_path / "secret-id").write_text(secret_id)
    return (
        f"{{method: approle, role_id_file: {tmp_path}/role-id, "
        f"secret_id_file: {tmp_path}/secret-id}}"
    )


def secrets_config(openbao: OpenBao, auth: str, sources: str, templates: str,
                   extra: str = "") -> str:  # fmt: skip
    return f"""
secrets:
  init_timeout: 3s
  vault: {{address: "{openbao.address}", auth: {auth}}}
  sources:
{sources}
  templates:
{templates}
{extra}"""


def init(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, body)
    return subprocess.run(
        [sys.executable, "-m", "pillion", "init", "-c", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    found: list[str] = []
    for line in result.stderr.splitlines():
        record = json.loads(line)
        if record.get("level") == "error":
            found.extend([record["error"]] if "error" in record else record.get("errors", [""]))
    return found


@pytest.fixture
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def test_init_renders_kv_v1_and_v2_with_approle(
    openbao: OpenBao, tmp_path: Path, out: Path
) -> None:
    openbao.put_kv("secret", "app", {"password": "old", "user": "app"})
    openbao.put_kv("secret", "app", {"password": PASSWORD, "user": "app"})  # version 2
    openbao.enable_kv("kv1", 1)
    openbao.put_kv("kv1", "legacy", {"token": "t-1"}, version=1)
    body = secrets_config(
        openbao,
        approle(openbao, tmp_path),
        """    - {name: app, type: kv, path: secret/app}
    - {name: pinned, type: kv, path: secret/app, version: 1}
    - {name: legacy, type: kv, path: kv1/legacy, kv_version: 1}""",
        f"""    - {{name: env, destination: {out}/app.env, format: dotenv, source: app}}
    - {{name: json, destination: {out}/app.json, format: json, source: pinned, mode: "0440"}}
    - name: tmpl
      destination: {out}/db.conf
      template: "user={{{{ secrets.app.user }}}} token={{{{ secrets.legacy.token }}}}\\n"
""",
    )
    result = init(tmp_path, body)
    assert result.returncode == 0, result.stderr
    assert (out / "app.env").read_text() == f'password="{PASSWORD}"\nuser="app"\n'
    assert json.loads((out / "app.json").read_text()) == {"password": "old", "user": "app"}
    assert (out / "db.conf").read_text() == "user=app token=t-1\n"
    assert stat.S_IMODE(os.stat(out / "app.env").st_mode) == 0o400  # the default
    assert stat.S_IMODE(os.stat(out / "app.json").st_mode) == 0o440
    assert PASSWORD not in result.stderr


@pytest.mark.parametrize(
    ("template", "code", "message"),
    [
        ("{{ secrets.app.pasword }}", 1, "template bad line 1: 'dict object' has no attribute"),
        # what the config check finds is refused before anything runs
        ("x\n{% for %}", 2, "secrets (line 2): template bad: line 2: Expected an expression"),
        (
            "{{ secrets.ap.password }}",
            2,
            "secrets (line 2): template bad: line 1: no source named ap",
        ),
        ("{{ app.password }}", 2, "secrets (line 2): template bad: app is not defined"),
    ],
)
def test_init_with_a_bad_template_writes_nothing(
    openbao: OpenBao, tmp_path: Path, out: Path, template: str, code: int, message: str
) -> None:
    openbao.put_kv("secret", "app", {"password": PASSWORD})
    body = secrets_config(
        openbao,
        approle(openbao, tmp_path),
        "    - {name: app, type: kv, path: secret/app}",
        f"""    - {{name: good, destination: {out}/good.env, format: dotenv, source: app}}
    - {{name: bad, destination: {out}/bad.txt, template: {json.dumps(template)}}}""",
    )
    result = init(tmp_path, body)
    assert result.returncode == code
    assert any(e.startswith(message) for e in errors(result)), result.stderr
    assert list(out.iterdir()) == []  # not even the good one
    assert PASSWORD not in result.stderr


def test_init_faults_name_the_cause(openbao: OpenBao, tmp_path: Path, out: Path) -> None:
    templates = f"    - {{name: t, destination: {out}/t.env, format: dotenv, source: app}}"
    auth = approle(openbao, tmp_path)
    # a path that does not exist
    missing = secrets_config(openbao, auth, "    - {name: app, type: kv, path: secret/none}",
                             templates)  # fmt: skip
    result = init(tmp_path, missing)
    assert result.returncode == 1
    assert errors(result)[-1].startswith("source app: GET /v1/secret/data/none: 404")
    # a wrong secret id: login refused
    (tmp_path / "secret-id").write_text("00000000-0000-0000-0000-000000000000")
    openbao.put_kv("secret", "app", {"password": PASSWORD})
    ok_source = "    - {name: app, type: kv, path: secret/app}"
    result = init(tmp_path, secrets_config(openbao, auth, ok_source, templates))
    assert result.returncode == 1
    assert errors(result)[-1].startswith("vault login refused: POST /v1/auth/approle/login: 400")
    # a destination directory that does not exist
    auth = approle(openbao, tmp_path)
    unwritable = f"    - {{name: t, destination: {out}/no/t.env, format: dotenv, source: app}}"
    result = init(tmp_path, secrets_config(openbao, auth, ok_source, unwritable))
    assert result.returncode == 1
    assert (
        errors(result)[-1] == f"template t: cannot write {out}/no/t.env: No such file or directory"
    )
    # OpenBao down: retried until init_timeout, then a clear failure
    address = openbao.address
    openbao.stop(graceful=False)
    result = init(tmp_path, secrets_config(openbao, auth, ok_source, templates))
    assert result.returncode == 1
    last = errors(result)[-1]
    assert last.startswith("gave up after init_timeout (3s): login: POST /v1/auth/approle/login")
    assert "Cannot connect" in last or "Connect" in last
    assert address.split("//")[1] in last
    assert list(out.iterdir()) == []
    assert PASSWORD not in result.stderr


def test_init_with_a_jwt_login(openbao: OpenBao, tmp_path: Path, out: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    openbao.write_policy("reader", 'path "*" { capabilities = ["read"] }')
    openbao.enable_jwt("jwt", public.decode(), "app", ["pillion"], "sub", ["reader"])
    now = int(time.time())
    token = jwt.encode(
        {"sub": "system:serviceaccount:shop:web", "aud": "pillion", "iat": now, "exp": now + 600},
        key,
        algorithm="RS256",
    )
    (tmp_path / "sa-token").write_text(token)
    openbao.put_kv("secret", "app", {"password": PASSWORD})
    body = secrets_config(
        openbao,
        f"{{method: jwt, role: app, token_file: {tmp_path}/sa-token}}",
        "    - {name: app, type: kv, path: secret/app}",
        f"    - {{name: t, destination: {out}/t.env, format: dotenv, source: app}}",
    )
    result = init(tmp_path, body)
    assert result.returncode == 0, result.stderr
    assert (out / "t.env").read_text() == f'password="{PASSWORD}"\n'
    assert token not in result.stderr


def probe(process: PillionProcess, path: str) -> int:
    try:
        return http("GET", f"{process.status_url}{path}", timeout=2)[0]
    except OSError:
        return 0


def metrics(process: PillionProcess) -> bytes:
    return http("GET", f"{process.status_url}/metrics")[2]


def test_sidecar_starts_after_the_first_render_and_keeps_files_fresh(
    openbao: OpenBao, tmp_path: Path, out: Path
) -> None:
    auth = approle(openbao, tmp_path)
    body = secrets_config(
        openbao,
        auth,
        "    - {name: app, type: kv, path: secret/app, refresh: 200ms}",
        f"""    - {{name: env, destination: {out}/app.env, format: dotenv, source: app,
         notify: [app]}}""",
        extra=f"""app:
  notify:
    - {{name: app, exec: {{command: [sh, -c, "echo notified >> {tmp_path}/notified"]}}}}
""",
    )
    with running_pillion(tmp_path, body, ready=False) as process:
        wait_until(lambda: probe(process, "/healthz/live") == 200)
        assert probe(process, "/healthz/started") == 503  # the secret does not exist yet
        assert not (out / "app.env").exists()
        openbao.put_kv("secret", "app", {"password": "v1"})
        wait_until(lambda: probe(process, "/healthz/started") == 200)
        assert (out / "app.env").read_text() == 'password="v1"\n'
        assert not (tmp_path / "notified").exists()  # the first render notifies no one
        openbao.put_kv("secret", "app", {"password": PASSWORD})  # a change: render, notify
        wait_until(lambda: (out / "app.env").read_text() == f'password="{PASSWORD}"\n')
        wait_until(lambda: (tmp_path / "notified").exists())
        fetches = 'pillion_secret_fetches_total{result="ok",source="app"}'
        fetched = metric_value(metrics(process), fetches) or 0
        wait_until(lambda: (metric_value(metrics(process), fetches) or 0) >= fetched + 3)
        assert (tmp_path / "notified").read_text() == "notified\n"  # nothing changed since
        exposition = metrics(process)
        ok = 'pillion_notify_total{result="ok",target="app"}'
        assert metric_value(exposition, ok) == 1.0
        changed = 'pillion_secret_renders_total{result="changed",template="env"}'
        assert metric_value(exposition, changed) == 2.0
        assert metric_value(exposition, 'pillion_secret_stale{source="app"}') == 0.0
        # OpenBao unreachable: the last good file stays, the source is stale
        openbao.pause()
        wait_until(lambda: metric_value(metrics(process), 'pillion_secret_stale{source="app"}')
                   == 1.0, timeout=30)  # fmt: skip
        assert (out / "app.env").read_text() == f'password="{PASSWORD}"\n'
        assert probe(process, "/healthz/ready") == 200  # stale, still valid
        openbao.resume()
        wait_until(lambda: metric_value(metrics(process), 'pillion_secret_stale{source="app"}')
                   == 0.0, timeout=30)  # fmt: skip
        config_dump = http("GET", f"{process.admin_url}/config")[2].decode()
        assert PASSWORD not in config_dump
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics(process),
                               capture_output=True, timeout=30, check=False)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout + check.stderr == b""
    assert PASSWORD not in process.output()


def test_token_renewal_and_login_again_after_revocation(
    openbao: OpenBao, tmp_path: Path, out: Path
) -> None:
    auth = approle(openbao, tmp_path, token_ttl="3s", token_max_ttl="1h")
    openbao.put_kv("secret", "app", {"password": "v1"})
    body = secrets_config(
        openbao,
        auth,
        "    - {name: app, type: kv, path: secret/app, refresh: 300ms}",
        f"    - {{name: env, destination: {out}/app.env, format: dotenv, source: app}}",
    )
    with running_pillion(tmp_path, body, ready=False) as process:
        wait_until(lambda: probe(process, "/healthz/started") == 200)
        renewed = 'pillion_vault_auth_total{result="renewed"}'
        wait_until(lambda: (metric_value(metrics(process), renewed) or 0) >= 2)  # every 2s
        # every AppRole token revoked on the server: the next read gets 403, Pillion
        # logs in again and goes on
        status, _ = openbao.api("PUT", "sys/leases/revoke-prefix/auth/approle/login", {})
        assert status == 204
        openbao.put_kv("secret", "app", {"password": "v2"})
        wait_until(lambda: (out / "app.env").read_text() == 'password="v2"\n')
        logins = metric_value(metrics(process), 'pillion_vault_auth_total{result="ok"}')
        assert logins is not None
        assert logins >= 2


def test_pki_certificates_are_issued_again_before_they_expire(
    openbao: OpenBao, tmp_path: Path, out: Path
) -> None:
    ca = openbao.enable_pki("pki", "web", max_ttl="1h")
    (tmp_path / "ca.pem").write_text(ca)
    body = secrets_config(
        openbao,
        approle(openbao, tmp_path),
        """    - {name: cert, type: pki, path: pki/issue/web, common_name: web.shop.svc,
       alt_names: [web], ip_sans: [127.0.0.1], ttl: 3s, renew_at: 0.5}""",
        f"""    - {{name: crt, destination: {out}/tls.crt, format: raw, source: cert, key: chain,
         mode: "0444"}}
    - {{name: key, destination: {out}/tls.key, format: raw, source: cert, key: private_key}}""",
    )
    with running_pillion(tmp_path, body, ready=False) as process:
        wait_until(lambda: probe(process, "/healthz/started") == 200)

        def serial() -> str:
            return subprocess.run(
                ["openssl", "x509", "-noout", "-serial", "-in", str(out / "tls.crt")],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip

        first = serial()
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(out / "tls.crt")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr
        wait_until(lambda: serial() != first)  # re-issued at half its 3s lifetime
        expiry = metric_value(metrics(process), 'pillion_secret_lease_expiry_timestamp_seconds'
                              '{source="cert"}')  # fmt: skip
        assert expiry is not None
        assert expiry > time.time()
        assert stat.S_IMODE(os.stat(out / "tls.key").st_mode) == 0o400
        key_text = (out / "tls.key").read_text()
        assert "PRIVATE KEY" in key_text
    assert key_text not in process.output()


def test_database_credentials_are_renewed_replaced_at_max_ttl_and_when_revoked(
    openbao: OpenBao, postgres: Postgres, tmp_path: Path, out: Path,
) -> None:  # fmt: skip
    openbao.enable_database_postgres(postgres, "capped", default_ttl="3s", max_ttl="5s")
    openbao.enable_database_postgres(postgres, "long", default_ttl="3s", max_ttl="1h")
    body = secrets_config(
        openbao,
        approle(openbao, tmp_path),
        """    - {name: capped, type: dynamic, path: database/creds/capped}
    - {name: long, type: dynamic, path: database/creds/long}""",
        f"""    - {{name: capped, destination: {out}/capped.json, format: json, source: capped}}
    - {{name: long, destination: {out}/long.json, format: json, source: long}}""",
    )

    def credentials(name: str) -> dict[str, str]:
        return dict(json.loads((out / f"{name}.json").read_text()))

    def logs_in(creds: dict[str, str]) -> bool:
        try:
            answer = postgres.query("SELECT 1", user=creds["username"], password=creds["password"])
        except (subprocess.CalledProcessError, AssertionError):
            return False
        return answer.strip().endswith("1")

    def count(series: str) -> float:
        return metric_value(metrics(process), series) or 0.0

    with running_pillion(tmp_path, body, ready=False) as process:
        wait_until(lambda: probe(process, "/healthz/started") == 200)
        first = credentials("capped")
        assert logs_in(first)  # real credentials, made by OpenBao in PostgreSQL
        # renewed at 2/3 of the lease; the max TTL (5s) then caps the renewals, and
        # new credentials are fetched before the lease ends
        wait_until(lambda: count('pillion_secret_lease_renewals_total{result="ok",'
                                 'source="capped"}') >= 1)  # fmt: skip
        wait_until(lambda: credentials("capped")["username"] != first["username"])
        assert logs_in(credentials("capped"))
        expiry = count('pillion_secret_lease_expiry_timestamp_seconds{source="capped"}')
        assert expiry > time.time()
        # a lease with a long max TTL keeps its credentials, renewed, until it is
        # revoked on the server: the renewal fails and a new secret is fetched
        long = credentials("long")
        wait_until(lambda: count('pillion_secret_lease_renewals_total{result="ok",'
                                 'source="long"}') >= 2)  # fmt: skip
        assert credentials("long") == long
        status, _ = openbao.api("PUT", "sys/leases/revoke-prefix/database/creds/long", {})
        assert status == 204
        wait_until(lambda: not logs_in(long))  # the revocation dropped the role
        wait_until(lambda: credentials("long")["username"] != long["username"])
        assert count('pillion_secret_lease_renewals_total{result="failed",source="long"}') >= 1
        assert logs_in(credentials("long"))
    assert long["password"] not in process.output()


def test_init_with_the_kubernetes_login(openbao: OpenBao, tmp_path: Path, out: Path) -> None:
    token, key = service_account_token("shop", "web")
    now = int(time.time())
    (tmp_path / "sa-token").write_text(token)
    reviews = TokenReviews(tmp_path, token, "system:serviceaccount:shop:web")
    try:
        openbao.write_policy("reader", 'path "*" { capabilities = ["read"] }')
        openbao.enable_kubernetes(reviews, "web", "shop", ["reader"])
        openbao.put_kv("secret", "app", {"password": PASSWORD})
        body = secrets_config(
            openbao,
            f"{{method: kubernetes, role: web, token_file: {tmp_path}/sa-token}}",
            "    - {name: app, type: kv, path: secret/app}",
            f"    - {{name: t, destination: {out}/t.env, format: dotenv, source: app}}",
        )
        result = init(tmp_path, body)
        assert result.returncode == 0, result.stderr
        assert (out / "t.env").read_text() == f'password="{PASSWORD}"\n'
        assert [r["spec"]["token"] for r in reviews.reviews] == [token]  # reviewed once
        # a token for another service account is refused
        (out / "t.env").unlink()
        other = jwt.encode({"sub": "system:serviceaccount:shop:other", "exp": now + 600}, key,
                           algorithm="RS256")  # fmt: skip
        (tmp_path / "sa-token").write_text(other)
        result = init(tmp_path, body)
        assert result.returncode == 1
        assert errors(result)[-1].startswith("vault login refused: POST /v1/auth/kubernetes/login")
        assert not (out / "t.env").exists()
        assert token not in result.stderr
    finally:
        reviews.close()


def test_the_proxy_serves_the_pki_certificate_and_its_reissues(
    openbao: OpenBao, tmp_path: Path, out: Path
) -> None:
    """The proxy starts once the certificate is rendered (secrets hold the components
    after them), and its TLS reload picks up each re-issued certificate."""
    ca = openbao.enable_pki("pki", "web", max_ttl="1h")
    (tmp_path / "ca.pem").write_text(ca)
    listen = free_port()
    body = secrets_config(
        openbao,
        approle(openbao, tmp_path),
        """    - {name: cert, type: pki, path: pki/issue/web, common_name: web.shop.svc,
       ttl: 4s, renew_at: 0.5}""",
        f"""    - {{name: crt, destination: {out}/tls.crt, format: raw, source: cert, key: chain}}
    - {{name: key, destination: {out}/tls.key, format: raw, source: cert, key: private_key}}""",
        extra=f"""proxy:
  inbound:
    - name: secure
      listen: 127.0.0.1:{listen}
      tls:
        certificates: [{{cert: {out}/tls.crt, key: {out}/tls.key}}]
        reload_interval: 100ms
""",
    )

    def served_serial() -> str:
        shown = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{listen}", "-servername",
             "web.shop.svc", "-CAfile", str(tmp_path / "ca.pem"), "-verify_return_error"],
            input="", capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        if "Verify return code: 0 (ok)" not in shown.stdout:
            return ""
        cert = shown.stdout[shown.stdout.index("-----BEGIN CERTIFICATE-----"):
                            shown.stdout.index("-----END CERTIFICATE-----") + 25]  # fmt: skip
        return subprocess.run(["openssl", "x509", "-noout", "-serial"], input=cert,
                              capture_output=True, text=True, check=True).stdout  # fmt: skip

    with running_pillion(tmp_path, body) as process:
        first = served_serial()
        assert first.startswith("serial=")
        wait_until(lambda: served_serial() not in ("", first))  # re-issued, and served
    waiting = [r for r in process.records() if r.get("message") == "waiting for a component "
               "before starting the rest"]  # fmt: skip
    assert waiting
    assert waiting[0]["waiting_for"] == "secrets"


def test_a_sidecar_waiting_for_its_secrets_stops_cleanly(tmp_path: Path, out: Path) -> None:
    """The server never answers: the status server says not started, the components
    after secrets never start, and SIGTERM still ends it with 0."""
    (tmp_path / "token").write_text("t")
    body = f"""
secrets:
  vault: {{address: "http://127.0.0.1:{free_port()}", auth: {{method: token,
           token_file: {tmp_path}/token}}}}
  sources: [{{name: app, type: kv, path: secret/app}}]
  templates: [{{name: t, destination: {out}/t.env, format: dotenv, source: app}}]
logs:
  checkpoints: {tmp_path}/logs.db
  inputs: [{{name: app, paths: ["{tmp_path}/*.log"]}}]
  outputs: [{{name: out, type: stdout}}]
"""
    with running_pillion(tmp_path, body, ready=False) as process:
        wait_until(lambda: probe(process, "/healthz/live") == 200)
        process.wait_for_log("vault login failed")
        assert probe(process, "/healthz/started") == 503
        health = json.loads(http("GET", f"{process.status_url}/healthz/started")[2])
        assert health["components"]["secrets"]["started"] is False
        assert health["components"]["logs"]["state"] == "starting"  # held: never started
        process.signal(signal.SIGTERM)
        assert process.wait_exit() == 0


def test_init_over_tls_with_the_servers_ca(tmp_path: Path, out: Path) -> None:
    with OpenBao(tmp_path / "tls-openbao", tls=True) as server:
        server.put_kv("secret", "app", {"password": PASSWORD})
        token = server.create_token(["root"], ttl="1h")
        (tmp_path / "token").write_text(token)
        templates = f"    - {{name: t, destination: {out}/t.env, format: dotenv, source: app}}"
        source = "    - {name: app, type: kv, path: secret/app}"
        auth = f"{{method: token, token_file: {tmp_path}/token}}"
        trusted = secrets_config(server, auth, source, templates).replace(
            f'address: "{server.address}"', f'address: "{server.address}", ca: {server.ca_file}'
        )
        result = init(tmp_path, trusted)
        assert result.returncode == 0, result.stderr
        assert (out / "t.env").read_text() == f'password="{PASSWORD}"\n'
        (out / "t.env").unlink()
        # without the CA the server's certificate is not trusted: retried, then given up
        result = init(tmp_path, secrets_config(server, auth, source, templates))
        assert result.returncode == 1
        assert (
            "CERTIFICATE_VERIFY_FAILED" in errors(result)[-1]
            or "certificate verify" in (errors(result)[-1])
        )
        assert not (out / "t.env").exists()
        assert token not in result.stderr


def test_init_renders_config_templates_too_all_or_nothing(tmp_path: Path, out: Path) -> None:
    (tmp_path / "settings.yaml").write_text("color: blue\n")
    body = f"""
secrets:
  sources: [{{name: file, type: file, path: {tmp_path}/settings.yaml}}]
  templates: [{{name: s, destination: {out}/s.json, format: json, source: file}}]
config:
  sources: [{{name: settings, type: file, path: {tmp_path}/settings.yaml}}]
  templates:
    - {{name: c, destination: {out}/c.txt, template: "color={{{{ config.settings.color }}}}"}}
"""
    result = init(tmp_path, body)
    assert result.returncode == 0, result.stderr
    assert (out / "c.txt").read_text() == "color=blue"
    assert json.loads((out / "s.json").read_text()) == {"color": "blue"}
    for file in out.iterdir():
        file.unlink()
    broken = body.replace("config.settings.color", "config.settings.colour")
    result = init(tmp_path, broken)
    assert result.returncode == 1
    assert errors(result)[-1].startswith("template c line 1: 'dict object' has no attribute")
    assert list(out.iterdir()) == []  # the secrets template was not written either


def test_kubernetes_login_outlives_an_outage_a_new_ttl_and_a_rotated_token(
    openbao: OpenBao, tmp_path: Path, out: Path
) -> None:
    """One Pillion throughout, no restart. Its token lives 3s and is renewed every
    2s; the kubelet rotates the service-account token file (the old token no longer
    passes review); then OpenBao is down for longer than the Vault token lives and
    comes back (a dev server, so empty: set up again, with a 6s TTL this time).
    Pillion logs in with the new service-account token, gets the new TTL, renews on
    it, and renders the secret as it now is.

    What is real: OpenBao and its kubernetes auth method, which asks a TokenReview
    API over HTTPS. What is faked: that API (``TokenReviews``), as no Kubernetes API
    server runs here; it accepts the tokens the test says the kubelet issued."""
    token_a, _ = service_account_token("shop", "web")
    token_file = tmp_path / "serviceaccount" / "token"
    token_file.parent.mkdir()
    token_file.write_text(token_a)
    reviews = TokenReviews(tmp_path, token_a, "system:serviceaccount:shop:web")

    def set_up(ttl: str, password: str) -> None:
        openbao.write_policy("reader", 'path "*" { capabilities = ["read"] }')
        openbao.enable_kubernetes(reviews, "web", "shop", ["reader"], token_ttl=ttl)
        openbao.put_kv("secret", "app", {"password": password})

    def count(series: str) -> float:
        return metric_value(metrics(process), series) or 0.0

    def logins() -> list[dict[str, object]]:
        return [r for r in process.records() if r.get("message") == "logged in to vault"]

    set_up("3s", "before-outage")
    body = secrets_config(
        openbao,
        f"{{method: kubernetes, role: web, token_file: {token_file}}}",
        "    - {name: app, type: kv, path: secret/app, refresh: 300ms}",
        f"    - {{name: env, destination: {out}/app.env, format: dotenv, source: app}}",
    ).replace(f'address: "{openbao.address}"',
              f'address: "{openbao.address}", max_backoff: 500ms')  # fmt: skip
    renewed = 'pillion_vault_auth_total{result="renewed"}'
    failed = 'pillion_vault_auth_total{result="failed"}'
    try:
        with running_pillion(tmp_path, body) as process:
            pid = process.proc.pid
            assert (out / "app.env").read_text() == 'password="before-outage"\n'
            wait_until(lambda: count(renewed) >= 1)
            assert [login["ttl"] for login in logins()] == [3.0]
            # the kubelet rotates the projected token: a new file, swapped in whole
            token_b, _ = service_account_token("shop", "web")
            rotated = token_file.with_name(".token.new")
            rotated.write_text(token_b)
            rotated.replace(token_file)
            reviews.rotate(token_b)
            openbao.stop()
            # after the first, each failed login waits at least 0.25s (half of
            # max_backoff) before the next: 24 of them, and the outage has lasted
            # about twice the token's life, three renewal intervals
            wait_until(lambda: count(failed) >= 24, timeout=60)
            assert count('pillion_vault_auth_total{result="renew_failed"}') >= 1
            assert count('pillion_secret_stale{source="app"}') == 1
            assert (out / "app.env").read_text() == 'password="before-outage"\n'
            openbao.start()
            set_up("6s", PASSWORD)
            wait_until(lambda: (out / "app.env").read_text() == f'password="{PASSWORD}"\n',
                       timeout=30)  # fmt: skip
            assert logins()[-1]["ttl"] == 6.0  # the new TTL
            after = count(renewed)
            wait_until(lambda: count(renewed) >= after + 2, timeout=30)  # renewed on it
            assert count('pillion_secret_stale{source="app"}') == 0
            assert process.proc.poll() is None
            assert process.proc.pid == pid  # the same process throughout
            reviewed = [review["spec"]["token"] for review in reviews.reviews]
            assert reviewed[0] == token_a
            assert reviewed[-1] == token_b  # the login after the outage: the new token
            assert set(reviewed) == {token_a, token_b}
    finally:
        reviews.close()
    output = process.output()
    for secret in (PASSWORD, token_a, token_b):
        assert secret not in output
