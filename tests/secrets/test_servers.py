"""The secret-server fixtures run real servers, and each helper really works."""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.secrets.servers import OpenBao, Postgres

READER = 'path "kv/data/app" { capabilities = ["read"] }'


def test_kv_v1_round_trip(openbao: OpenBao) -> None:
    openbao.enable_kv("secret", version=1)  # replaces dev mode's KV v2 secret/
    assert openbao.put_kv("secret", "app/db", {"password": "s3cret"}, version=1) is None

    status, body = openbao.api("GET", "/v1/secret/app/db")
    assert status == 200
    assert body["data"] == {"password": "s3cret"}
    assert openbao.read_kv("secret", "app/db", version=1) == {"password": "s3cret"}


def test_kv_v2_round_trip(openbao: OpenBao) -> None:
    openbao.enable_kv("kv", version=2)
    assert openbao.put_kv("kv", "app", {"user": "a"})["version"] == 1
    assert openbao.put_kv("kv", "app", {"user": "b"})["version"] == 2

    status, body = openbao.api("GET", "kv/data/app")
    assert status == 200
    assert body["data"]["data"] == {"user": "b"}
    assert body["data"]["metadata"]["version"] == 2
    assert openbao.api("GET", "kv/data/app?version=1")[1]["data"]["data"] == {"user": "a"}


def test_policy_and_token_lifecycle(openbao: OpenBao) -> None:
    openbao.enable_kv("kv")
    openbao.put_kv("kv", "app", {"k": "v"})
    openbao.write_policy("reader", READER)
    token = openbao.create_token(["reader"], ttl="2m")

    assert openbao.api("GET", "kv/data/app", token=token)[1]["data"]["data"] == {"k": "v"}
    assert openbao.api("POST", "kv/data/app", {"data": {}}, token=token)[0] == 403
    assert openbao.api("GET", "kv/data/other", token=token)[0] == 403
    status, body = openbao.api("GET", "auth/token/lookup-self", token=token)
    assert status == 200
    assert body["data"]["renewable"] is True
    assert 0 < body["data"]["ttl"] <= 120
    assert sorted(body["data"]["policies"]) == ["default", "reader"]
    status, body = openbao.api("POST", "auth/token/renew-self", {"increment": "1m"}, token=token)
    assert status == 200
    assert body["auth"]["lease_duration"] == 60

    openbao.revoke_token(token)
    assert openbao.api("GET", "auth/token/lookup-self", token=token)[0] == 403


def test_token_not_renewable(openbao: OpenBao) -> None:
    token = openbao.create_token([], ttl="1m", renewable=False)
    assert (
        openbao.api("GET", "auth/token/lookup-self", token=token)[1]["data"]["renewable"] is False
    )
    assert openbao.api("POST", "auth/token/renew-self", {}, token=token)[0] == 400


def test_approle_login(openbao: OpenBao) -> None:
    openbao.write_policy("reader", READER)
    role_id, secret_id = openbao.enable_approle("app", ["reader"], token_ttl="5m")
    # a second role on the same auth mount works too
    assert openbao.enable_approle("other", ["default"])[0] != role_id

    status, body = openbao.api(
        "POST", "auth/approle/login", {"role_id": role_id, "secret_id": secret_id}, token=""
    )
    assert status == 200
    assert body["auth"]["client_token"]
    assert "reader" in body["auth"]["policies"]
    assert body["auth"]["lease_duration"] == 300

    wrong = {"role_id": role_id, "secret_id": "wrong"}
    assert openbao.api("POST", "auth/approle/login", wrong, token="")[0] == 400


def test_jwt_login(openbao: OpenBao) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    openbao.write_policy("reader", READER)
    openbao.enable_jwt("jwt", public_pem, "app", ["pillion"], "sub", ["reader"])

    def login(audience: str) -> tuple[int, dict[str, object]]:
        now = int(time.time())
        claims = {"sub": "system:serviceaccount:default:app", "aud": audience}
        token = jwt.encode({**claims, "iat": now, "exp": now + 60}, key, algorithm="ES256")
        status, body = openbao.api("POST", "auth/jwt/login", {"role": "app", "jwt": token}, "")
        return status, body

    status, body = login("pillion")
    assert status == 200, body
    auth = body["auth"]
    assert isinstance(auth, dict)
    assert "reader" in auth["policies"]
    assert auth["metadata"]["role"] == "app"
    assert login("someone-else")[0] == 400


def test_pki_issue(openbao: OpenBao) -> None:
    ca_pem = openbao.enable_pki("pki", role="any", max_ttl="5m")
    ca = x509.load_pem_x509_certificate(ca_pem.encode())

    status, body = openbao.api(
        "POST", "pki/issue/any", {"common_name": "app.pillion.test", "ip_sans": "127.0.0.1"}
    )
    assert status == 200, body
    cert = x509.load_pem_x509_certificate(body["data"]["certificate"].encode())
    assert cert.issuer == ca.subject
    assert "app.pillion.test" in cert.subject.rfc4514_string()
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert lifetime <= dt.timedelta(minutes=5, seconds=30)
    assert "PRIVATE KEY" in body["data"]["private_key"]

    # a longer TTL than the role's max is cut down to it
    status, body = openbao.api("POST", "pki/issue/any", {"common_name": "x", "ttl": "24h"})
    assert status == 200, body
    cert = x509.load_pem_x509_certificate(body["data"]["certificate"].encode())
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=6)


def test_database_lease(openbao: OpenBao, postgres: Postgres) -> None:
    openbao.enable_database_postgres(postgres, "app", default_ttl="1m", max_ttl="5m")

    status, body = openbao.api("GET", "database/creds/app")
    assert status == 200, body
    assert body["lease_id"].startswith("database/creds/app/")
    assert body["lease_duration"] == 60
    assert body["renewable"] is True
    username, password = body["data"]["username"], body["data"]["password"]

    valid_until = login_roles(postgres)[username]
    assert valid_until  # VALID UNTIL '{{expiration}}'
    assert (
        postgres.query("SELECT current_user", user=username, password=password) == f"{username}\n"
    )

    assert openbao.api("PUT", "sys/leases/revoke", {"lease_id": body["lease_id"]})[0] == 204
    assert username not in login_roles(postgres)


def login_roles(postgres: Postgres) -> dict[str, str]:
    """Each role that can log in, with its expiry ('' for none)."""
    rows = postgres.query("SELECT rolname, rolvaliduntil FROM pg_roles WHERE rolcanlogin")
    return dict(row.split("|", 1) for row in rows.splitlines())


def test_pause_keeps_state_restart_loses_it(openbao: OpenBao) -> None:
    openbao.enable_kv("kv")
    openbao.put_kv("kv", "app", {"k": "v"})

    openbao.pause()
    # a timeout: the kernel accepts the connection, nothing answers
    with pytest.raises(OSError, match="timed out"):
        openbao.api("GET", "kv/data/app", timeout=0.5)
    openbao.resume()
    assert openbao.read_kv("kv", "app") == {"k": "v"}

    openbao.stop()
    with pytest.raises(OSError, match="Connection refused"):
        openbao.api("GET", "sys/health", timeout=2)
    openbao.start()
    assert openbao.api("GET", "sys/health")[0] == 200  # same port, same root token
    assert openbao.api("GET", "kv/data/app")[0] == 404  # but the kv/ mount is gone
