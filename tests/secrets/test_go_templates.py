"""Vault Agent templates (``syntax: go``) against a real OpenBao: the templates as
HashiCorp's docs and tutorials write them (KV v2 by its API path and by its plain
one, ``range`` over a secret, ``toJSON``, database credentials logged in with by
``psql``, ``pkiCert`` verified with ``openssl``), kept fresh in a sidecar (a KV
change read again, a lease renewed), and every bad template refused when the
config is loaded, naming the line and the construct, never a value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import metric_value, running_pillion, wait_until, write_config
from tests.secrets.servers import OpenBao, Postgres
from tests.secrets.test_openbao import PASSWORD, approle, errors, init, metrics, probe

# As the vault-k8s docs write them (KV v2 by its API path, `-` trimming).
POSTGRES_URL = """\
{{- with secret "secret/data/web" -}}
postgresql://{{ .Data.data.username }}:{{ .Data.data.password }}@postgres:5432/wizard
{{- end }}
"""
EXPORTS = """\
{{ with secret "secret/web" -}}
{{ range $k, $v := .Data.data -}}
export {{ $k }}="{{ $v }}"
{{ end -}}
{{ end -}}
"""
AS_JSON = '{{ with secret "secret/data/web" }}{{ .Data.data | toJSON }}{{ end }}\n'
DATABASE = """\
{{ with secret "database/creds/web" -}}
{{ .Data.username }} {{ .Data.password }} {{ .LeaseDuration }} {{ .Renewable }}
{{- end }}
"""
CERTIFICATE = """\
{{- with pkiCert "pki/issue/any" "common_name=web.shop.svc" "ttl=2m" -}}
{{ .Cert }}{{ .Key }}{{ .CA }}
{{- end -}}
"""
ENV = '{{ env "SHOP_REGION" }} {{ env "NOT_SET" }}\n'


def config(openbao: OpenBao, login: str, templates: list[dict[str, Any]], **vault: Any) -> str:
    document = {
        "secrets": {
            "init_timeout": "5s",
            "vault": {"address": openbao.address, "auth": "AUTH", **vault},
            "templates": [{"syntax": "go", **t} for t in templates],
        }
    }
    text = yaml.safe_dump(document, sort_keys=False)
    return text.replace("auth: AUTH", f"auth: {login}")  # the login, as test_openbao writes it


def go_config(openbao: OpenBao, tmp_path: Path, templates: dict[str, str], **options: Any) -> str:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    auth = approle(openbao, tmp_path)
    entries = [
        {"name": name, "destination": f"{out}/{name}", "template": text, **options}
        for name, text in templates.items()
    ]
    return config(openbao, auth, entries)


def test_templates_from_the_docs_render_as_vault_agent_writes_them(
    openbao: OpenBao, postgres: Postgres, tmp_path: Path
) -> None:
    openbao.put_kv("secret", "web", {"username": "web", "password": PASSWORD})
    openbao.enable_database_postgres(postgres, "web")
    ca = openbao.enable_pki()
    templates = {
        "postgres-url": POSTGRES_URL,
        "exports": EXPORTS,
        "web.json": AS_JSON,
        "db-creds": DATABASE,
        "tls.pem": CERTIFICATE,
        "env": ENV,
    }
    body = go_config(openbao, tmp_path, templates)
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "init", "-c", str(write_config(tmp_path, body))],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "SHOP_REGION": "eu-west"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert (out / "postgres-url").read_text() == (
        f"postgresql://web:{PASSWORD}@postgres:5432/wizard\n"
    )
    assert (out / "exports").read_text() == f'export password="{PASSWORD}"\nexport username="web"\n'
    assert json.loads((out / "web.json").read_text()) == {"password": PASSWORD, "username": "web"}
    user, password, lease, renewable = (out / "db-creds").read_text().split()
    assert (lease, renewable) == ("60", "true")  # the role's default_ttl, 1m
    assert postgres.query("SELECT current_user", user=user, password=password).strip() == user
    pem = (out / "tls.pem").read_text()
    assert pem.count("BEGIN CERTIFICATE") == 2  # the certificate, then the CA
    assert "PRIVATE KEY" in pem
    (tmp_path / "ca.pem").write_text(ca)
    (tmp_path / "leaf.pem").write_text(pem[: pem.index("-----END CERTIFICATE-----") + 26])
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", str(tmp_path / "leaf.pem")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "web.shop.svc" in subject
    # the agent's environment only, and <no value> for nothing, as Vault Agent
    assert (out / "env").read_text() == "eu-west \n"
    assert PASSWORD not in result.stderr
    assert password not in result.stderr


def test_a_missing_key_prints_no_value_or_with_error_on_missing_key_fails_naming_the_line(
    openbao: OpenBao, tmp_path: Path
) -> None:
    openbao.put_kv("secret", "web", {"password": PASSWORD})
    text = '{{ with secret "secret/data/web" }}\nuser={{ .Data.data.user }}\n{{ end }}'
    result = init(tmp_path, go_config(openbao, tmp_path, {"lenient": text}))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "lenient").read_text() == "\nuser=<no value>\n"
    strict = go_config(openbao, tmp_path, {"strict": text}, error_on_missing_key=True)
    result = init(tmp_path, strict)
    assert result.returncode == 1
    assert errors(result)[-1] == 'template strict: line 2: map has no entry for key "user"'
    assert not (tmp_path / "out" / "strict").exists()
    assert PASSWORD not in result.stderr


def test_a_sidecar_reads_kv_again_and_renews_the_template_leases(
    openbao: OpenBao, postgres: Postgres, tmp_path: Path
) -> None:
    openbao.put_kv("secret", "web", {"username": "web", "password": "v1"})
    openbao.enable_database_postgres(postgres, "web", default_ttl="3s", max_ttl="1h")
    out = tmp_path / "out"
    out.mkdir()
    templates = [
        {"name": "url", "destination": f"{out}/url", "template": POSTGRES_URL},
        {"name": "db", "destination": f"{out}/db", "template": DATABASE},
    ]
    body = config(
        openbao,
        approle(openbao, tmp_path),
        templates,
        static_secret_render_interval="200ms",
    )
    with running_pillion(tmp_path, body, ready=False) as process:
        wait_until(lambda: probe(process, "/healthz/started") == 200)
        assert (out / "url").read_text() == "postgresql://web:v1@postgres:5432/wizard\n"
        first = (out / "db").read_text()
        openbao.put_kv("secret", "web", {"username": "web", "password": PASSWORD})
        wait_until(lambda: PASSWORD in (out / "url").read_text())
        renewed = (
            'pillion_secret_lease_renewals_total{result="ok",source="vault:database/creds/web"}'
        )
        wait_until(lambda: (metric_value(metrics(process), renewed) or 0) >= 2, timeout=20)
        assert (out / "db").read_text() == first  # renewed: the same credentials
        user, password = first.split()[:2]
        assert postgres.query("SELECT 1", user=user, password=password).strip() == "1"
        assert probe(process, "/healthz/ready") == 200
    assert PASSWORD not in process.output()
    assert password not in process.output()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            '{{ with secret "secret/data/web" }}\n{{ file "/etc/passwd" }}{{ end }}',
            'template bad: line 2: function "file" is not supported',
        ),
        (
            '{{ with secret (printf "secret/data/%s" (env "APP")) }}{{ .Data }}{{ end }}',
            "template bad: line 1: secret with a path or parameter computed when the template "
            "runs is not supported",
        ),
        ('{{ with secret "secret/data/web" }}', "template bad: line 1: unexpected EOF"),
        ('{{ pkiCert "pki/issue/any" }}', "template bad: line 1: pkiCert needs the certificate"),
        (
            '{{ with secret "secret/data/web" }}{{ .data.password }}{{ end }}',
            'template bad: line 1: a secret has no field "data"',
        ),
        ('{{ define "x" }}{{ end }}', "template bad: line 1:"),
    ],
)
def test_a_template_vault_agent_would_take_but_pillion_does_not_is_refused_at_validate(
    tmp_path: Path, template: str, message: str
) -> None:
    body = yaml.safe_dump(
        {
            "secrets": {
                "vault": {
                    "address": "https://127.0.0.1:1",
                    "auth": {"method": "token", "token_file": "/nonexistent"},
                },
                "templates": [
                    {"name": "bad", "destination": "/tmp/x", "syntax": "go", "template": template}
                ],
            }
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "validate", "-c", str(write_config(tmp_path, body))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "secrets" in output
    assert message in output, output


def test_go_templates_need_vault_and_stay_out_of_the_config_section(tmp_path: Path) -> None:
    no_vault = {"secrets": {"templates": [{"name": "t", "destination": "/tmp/t", "syntax": "go",
                                           "template": "x"}]}}  # fmt: skip
    in_config = {
        "config": {
            "sources": [{"name": "s", "type": "env", "prefix": "X_"}],
            "templates": [{"name": "t", "destination": "/tmp/t", "syntax": "go", "template": "x"}],
        }
    }
    expected = [
        (no_vault, "templates t (syntax go) need `vault`"),
        (in_config, "syntax"),
    ]
    for document, message in expected:
        path = write_config(tmp_path, yaml.safe_dump(document))
        result = subprocess.run(
            [sys.executable, "-m", "pillion", "validate", "-c", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 2
        assert message in result.stdout + result.stderr, result.stdout + result.stderr
