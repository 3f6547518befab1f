"""A pod written for vault-k8s, injected by Pillion, gets from a real OpenBao the
files Vault Agent would write, with the annotations exactly as vault-k8s' docs
write them: a template from HashiCorp's tutorial (a file name with a dot, KV v2
by its API path), vault-k8s' default template for database credentials and for
a KV v2 secret, a file name and mode, and a second volume path."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from pillion.kube.inject import InjectSettings, inject_pod
from tests.secrets.servers import OpenBao, Postgres, TokenReviews, service_account_token
from tests.secrets.test_openbao import init

TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
V = "vault.hashicorp.com/"
TUTORIAL_TEMPLATE = """\
{{- with secret "secret/data/web" -}}
postgresql://{{ .Data.data.username }}:{{ .Data.data.password }}@postgres:5432/wizard
{{- end -}}
"""


def vault_k8s_pod(address: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": {
                V + "agent-inject": "true",
                V + "role": "web",
                V + "service": address,
                V + "agent-inject-secret-database-config.txt": "secret/data/web",
                V + "agent-inject-template-database-config.txt": TUTORIAL_TEMPLATE,
                V + "agent-inject-secret-db-creds": "database/creds/web",
                V + "agent-inject-file-db-creds": "db/creds.txt",
                V + "agent-inject-perms-db-creds": "0400",
                V + "agent-inject-secret-kv": "secret/data/web",
                V + "secret-volume-path-kv": "/etc/kv",
            },
        },
        "spec": {"serviceAccountName": "web", "containers": [{"name": "app", "image": "app:1"}]},
    }


def test_a_vault_k8s_pod_gets_its_secrets_from_openbao(
    openbao: OpenBao, postgres: Postgres, tmp_path: Path
) -> None:
    token, _ = service_account_token("shop", "web")
    (tmp_path / "sa-token").write_text(token)
    reviews = TokenReviews(tmp_path, token, "system:serviceaccount:shop:web")
    out = tmp_path / "secrets"
    out.mkdir()
    try:
        # the policy vault-k8s' docs write for these paths, and no more
        openbao.write_policy(
            "web", 'path "secret/data/web" { capabilities = ["read"] }\n'
            'path "database/creds/web" { capabilities = ["read"] }',
        )  # fmt: skip
        openbao.enable_kubernetes(reviews, "web", "shop", ["web"])
        openbao.put_kv("secret", "web", {"username": "web", "password": "s3cret"})
        openbao.enable_database_postgres(postgres, "web")
        decision = inject_pod(vault_k8s_pod(openbao.address), InjectSettings(), "shop")
        assert decision.injected, decision.reason
        app_mounts = decision.pod["spec"]["containers"][-1]["volumeMounts"]
        assert {"name": "pillion-secrets", "mountPath": "/vault/secrets", "readOnly": True} in (
            app_mounts)  # fmt: skip
        assert {"name": "pillion-secrets", "mountPath": "/etc/kv", "readOnly": True,
                "subPath": "vault-1"} in app_mounts  # fmt: skip
        config = decision.pod["metadata"]["annotations"]["pillion.dev/generated-config"]
        assert TOKEN_FILE in config
        config = config.replace(TOKEN_FILE, str(tmp_path / "sa-token"))
        config = config.replace("/secrets/", f"{out}/")
        result = init(tmp_path, config)
        assert result.returncode == 0, result.stderr
        # what the app reads at /vault/secrets/database-config.txt
        url = (out / "database-config.txt").read_text()
        assert url == "postgresql://web:s3cret@postgres:5432/wizard"
        # vault-k8s' default template: a `key: value` line for each key of .Data
        creds = out / "db" / "creds.txt"
        lines = dict(line.split(": ", 1) for line in creds.read_text().splitlines())
        assert set(lines) == {"username", "password"}
        assert stat.S_IMODE(os.stat(creds).st_mode) == 0o400
        user = lines["username"]
        assert (
            postgres.query("SELECT current_user", user=user, password=lines["password"]).strip()
            == user
        )
        # ... and for a KV v2 secret, its data and metadata, as Vault Agent prints them
        kv = (out / "vault-1" / "kv").read_text().splitlines()
        assert kv[0] == "data: map[password:s3cret username:web]"
        assert kv[1].startswith("metadata: map[created_time:")
        assert "s3cret" not in result.stderr
    finally:
        reviews.close()
