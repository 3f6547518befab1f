"""``examples/secrets-vault.yaml`` run for real: OpenBao over HTTPS with its own CA,
the kubernetes login (the TokenReview API is the one fake: no Kubernetes API server
runs here), a KV v2 secret, PostgreSQL credentials from the database engine, a PKI
certificate, and the app's reload endpoint, a loopback HTTP server.

Only addresses and paths are moved; the Vault roles are set up as the file's header
says a cluster's would be."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.examples.running import ReloadEndpoint, running_example
from tests.helpers import serve_http, wait_until
from tests.secrets.servers import OpenBao, Postgres, TokenReviews, service_account_token

APP_SECRET = {"stripe_api_key": "sk_live_51Hx-not-a-real-key", "session_key": 'k$`3"y'}

# What the header of the example says the Vault role "shop" needs, and no more.
POLICY = """
path "secret/data/shop/*" { capabilities = ["read"] }
path "database/creds/shop" { capabilities = ["read"] }
path "pki/issue/shop" { capabilities = ["update"] }
"""

# The pod's fsGroup in the example; a test not run as root can only give its own group.
GROUP = 1000 if os.geteuid() == 0 else os.getgid()


def env_file(path: Path) -> dict[str, str]:
    """The variables a shell gets from ``set -a; . <path>`` (as the app's entrypoint
    would load the file)."""
    result = subprocess.run(
        ["sh", "-c", f'set -a; . "{path}"; env -0'],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    pairs = (item.partition("=") for item in result.stdout.split("\0") if item)
    return {key: value for key, _, value in pairs if key.startswith("PG")}


def connects(path: Path) -> tuple[str, str]:
    """The user named in the env file, and ``current_user`` of a psql session made
    with nothing but the variables it sets (both from one reading of the file)."""
    result = subprocess.run(
        [
            "sh",
            "-c",
            f'set -a; . "{path}"; echo "$PGUSER"; exec psql -X -A -t -c "SELECT current_user"',
        ],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    named, session = result.stdout.split()
    return named, session


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[OpenBao]:
    """OpenBao over HTTPS (``-dev-tls``), as the example's ``https://`` address says."""
    with OpenBao(tmp_path / "openbao", tls=True) as server:
        yield server


def test_the_vault_agent_example_renders_renews_and_tells_the_app(
    vault: OpenBao, postgres: Postgres, tmp_path: Path
) -> None:
    # the cluster's side: the service account's token, Vault's roles and secrets
    token, _ = service_account_token("shop", "shop")
    token_file = tmp_path / "serviceaccount" / "token"
    token_file.parent.mkdir()
    token_file.write_text(token)
    reviews = TokenReviews(tmp_path, token, "system:serviceaccount:shop:shop")
    secrets = tmp_path / "vault-secrets"  # the emptyDir
    secrets.mkdir()
    if postgres.query("SELECT 1 FROM pg_database WHERE datname = 'shop'").strip() != "1":
        postgres.query("CREATE DATABASE shop")
    # the app re-reads the secret files: each call sees what they hold
    app = ReloadEndpoint(
        lambda: {
            "db": env_file(secrets / "db.env"),
            "app": json.loads((secrets / "app.json").read_text()),
        }
    )
    try:
        vault.write_policy("shop", POLICY)
        vault.enable_kubernetes(reviews, "shop", "shop", ["shop"])
        vault.put_kv("secret", "shop/app", APP_SECRET)
        # short leases, so that new credentials come while the test runs
        vault.enable_database_postgres(postgres, "shop", default_ttl="3s", max_ttl="5s")
        ca = x509.load_pem_x509_certificate(vault.enable_pki("pki", "shop", max_ttl="72h").encode())
        with (
            serve_http(app.handler) as app_port,
            running_example(
                "secrets-vault.yaml",
                tmp_path,
                moves={
                    "https://vault.vault.svc:8200": vault.address,
                    "/var/run/secrets/pillion/vault/ca.crt": str(vault.ca_file),
                    "/var/run/secrets/kubernetes.io/serviceaccount/token": str(token_file),
                    "/vault/secrets": str(secrets),
                    "127.0.0.1:8080": f"127.0.0.1:{app_port}",
                    "port: 8080": f"port: {app_port}",
                    '"postgres.shop.svc"': '"127.0.0.1"',
                    '"PGPORT": "5432"': f'"PGPORT": "{postgres.port}"',
                    "group: 1000": f"group: {GROUP}",
                },
            ) as process,
        ):
            # ready: every file is written, and the app would now start
            for name in ("db.env", "app.json", "tls.pem"):
                status = os.stat(secrets / name)
                assert stat.S_IMODE(status.st_mode) == 0o440, name
                assert status.st_gid == GROUP, name
            assert json.loads((secrets / "app.json").read_text()) == APP_SECRET
            first = env_file(secrets / "db.env")
            assert first["PGHOST"] == "127.0.0.1"
            assert first["PGDATABASE"] == "shop"
            assert first["PGUSER"].startswith("v-")  # made by the database engine
            named, session = connects(secrets / "db.env")
            assert session == named
            bundle = check_bundle((secrets / "tls.pem").read_text(), ca)
            assert [review["spec"]["token"] for review in reviews.reviews] == [token]

            # the lease reaches its max TTL: new credentials, a new file, the app told
            wait_until(lambda: env_file(secrets / "db.env")["PGUSER"] != first["PGUSER"])
            wait_until(lambda: any(c["db"]["PGUSER"] != first["PGUSER"] for c in app.calls))
            second = env_file(secrets / "db.env")
            named, session = connects(secrets / "db.env")  # the new credentials work
            assert session == named != first["PGUSER"]
            # every call came after a change: the first render told no one
            assert all(call["db"]["PGUSER"] != first["PGUSER"] for call in app.calls)
            assert all(call["path"] == "/-/reload" for call in app.calls)
            assert all(call["app"] == APP_SECRET for call in app.calls)
            assert (secrets / "tls.pem").read_text() == bundle  # not yet due again
        output = process.output()
        for secret in (first["PGPASSWORD"], second["PGPASSWORD"], token,
                       *APP_SECRET.values()):  # fmt: skip
            assert secret not in output
        assert "PRIVATE KEY" not in output
    finally:
        reviews.close()


def check_bundle(text: str, ca: x509.Certificate) -> str:
    """The PEM bundle is the certificate issued for the example's names by ``ca``,
    then ``ca``, then the certificate's private key; returns it."""
    blocks = re.findall(r"-----BEGIN ([A-Z ]+)-----\n.*?-----END \1-----\n?", text, re.DOTALL)
    assert blocks == ["CERTIFICATE", "CERTIFICATE", "EC PRIVATE KEY"]
    leaf, issuer = x509.load_pem_x509_certificates(text.encode())
    assert issuer == ca
    leaf.verify_directly_issued_by(ca)
    name = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert name == "shop.shop.svc"
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "shop.shop.svc",
        "shop.shop.svc.cluster.local",
    }
    # the ttl asked for (OpenBao dates the start 30s back)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(hours=72) <= lifetime <= timedelta(hours=72, minutes=1)
    key = serialization.load_pem_private_key(text.encode(), password=None)
    public = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*public) == leaf.public_key().public_bytes(*public)
    assert text.endswith("-----END EC PRIVATE KEY-----\n")
    return text
