"""A pod written for vault-k8s, injected by Pillion, gets its secrets from a real
OpenBao with the paths exactly as vault-k8s' docs write them: a KV v2 secret by its
API path (``secret/data/web``), a file name with a dot, and database credentials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pillion.kube.inject import InjectSettings, inject_pod
from tests.secrets.servers import OpenBao, Postgres, TokenReviews, service_account_token
from tests.secrets.test_openbao import init

TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def vault_k8s_pod(address: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": {
                "vault.hashicorp.com/agent-inject": "true",
                "vault.hashicorp.com/role": "web",
                "vault.hashicorp.com/service": address,
                "vault.hashicorp.com/agent-inject-secret-database-config.txt": "secret/data/web",
                "vault.hashicorp.com/agent-inject-secret-db-creds": "database/creds/web",
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
        config = decision.pod["metadata"]["annotations"]["pillion.dev/generated-config"]
        assert TOKEN_FILE in config
        config = config.replace(TOKEN_FILE, str(tmp_path / "sa-token"))
        config = config.replace("/secrets/", f"{out}/")
        result = init(tmp_path, config)
        assert result.returncode == 0, result.stderr
        kv = json.loads((out / "database-config.txt").read_text())
        assert kv == {"username": "web", "password": "s3cret"}
        creds = json.loads((out / "db-creds").read_text())
        assert set(creds) == {"username", "password"}
        assert "s3cret" not in result.stderr
    finally:
        reviews.close()
