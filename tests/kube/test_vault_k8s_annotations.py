"""vault-k8s' annotations, each as the Vault Agent injector documents it: honoured
(files, templates, permissions, commands, volume paths, the login, Vault's TLS),
not applicable (reported in the status), or refused (the pod skipped, the reason
naming the annotation and what to write instead)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pillion.config import PillionConfig
from pillion.config.secrets import VaultRequest, go_template_requests
from pillion.kube.inject import InjectSettings, inject_pod
from pillion.kube.vaultk8s import REFERENCE

V = "vault.hashicorp.com/"


def pod_with(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    body = {
        "serviceAccountName": "web",
        "containers": [
            {"name": "app", "image": "app:1"},
            {"name": "worker", "image": "worker:1"},
        ],
        **spec,
    }
    every = {V + "agent-inject": "true", **annotations}
    return {"metadata": {"name": "web", "annotations": every}, "spec": body}


def inject(annotations: dict[str, str], **spec: Any) -> tuple[bool, str, dict[str, Any]]:
    decision = inject_pod(pod_with(annotations, **spec), InjectSettings(), "shop")
    return decision.injected, decision.reason, decision.pod


def injected(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    ok, reason, pod = inject(annotations, **spec)
    assert ok, reason
    return pod


def generated(pod: dict[str, Any]) -> PillionConfig:
    text = pod["metadata"]["annotations"]["pillion.dev/generated-config"]
    return PillionConfig.model_validate(yaml.safe_load(text))


def status(pod: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(pod["metadata"]["annotations"]["pillion.dev/status"])
    return found


def mounts(pod: dict[str, Any], container: str) -> list[dict[str, Any]]:
    every = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    found: list[dict[str, Any]] = next(c for c in every if c["name"] == container).get(
        "volumeMounts", []
    )
    return found


def test_every_vault_k8s_annotation_has_a_rule() -> None:
    listed = Path(__file__).with_name("vault_k8s_annotations.txt").read_text().split("\n")
    names = {line for line in listed if line and not line.startswith("#")}
    assert len(names) > 70
    assert {rule.name for rule in REFERENCE} == names


def test_the_default_template_is_vault_k8s_map_or_json() -> None:
    pod = injected({V + "agent-inject-secret-db": "secret/data/db"})
    (template,) = generated(pod).secrets.templates  # type: ignore[union-attr]
    assert template.syntax == "go"
    assert template.template == (
        '{{ with secret "secret/data/db" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n'
        "{{ end }}{{ end }}"
    )
    assert go_template_requests("db", template.template) == [VaultRequest("secret/data/db")]
    as_json = injected({V + "agent-inject-secret-db": "secret/data/db",
                        V + "agent-inject-default-template": "json"})  # fmt: skip
    (template,) = generated(as_json).secrets.templates  # type: ignore[union-attr]
    assert template.template == '{{ with secret "secret/data/db" }}{{ .Data | toJSON }}\n{{ end }}'


def test_files_land_where_vault_k8s_puts_them() -> None:
    pod = injected({
        V + "agent-inject-secret-Config.TXT": "secret/data/a",
        V + "agent-inject-secret-db": "secret/data/db",
        V + "agent-inject-file-db": "/nested/db.env",
        V + "agent-inject-perms-db": "0400",
        V + "agent-inject-template-cert": '{{ with secret "pki/issue/web" "common_name=web" }}'
                                          "{{ .Data.certificate }}{{ end }}",
        V + "secret-volume-path-cert": "/etc/tls",
        V + "secret-volume-path": "/etc/secrets",
    })  # fmt: skip
    templates = {t.name: t for t in generated(pod).secrets.templates}  # type: ignore[union-attr]
    # names are lower-cased (preserve-secret-case keeps them); a file is joined under
    # its volume path; each other volume path is its own directory of the volume
    assert templates["config.txt"].destination == "/secrets/config.txt"
    assert templates["db"].destination == "/secrets/nested/db.env"
    assert templates["db"].create_directories
    assert templates["db"].mode == 0o400
    assert templates["cert"].destination == "/secrets/vault-1/cert"
    app = mounts(pod, "app")
    assert {"name": "pillion-secrets", "mountPath": "/etc/secrets", "readOnly": True} in app
    assert {"name": "pillion-secrets", "mountPath": "/etc/tls", "readOnly": True,
            "subPath": "vault-1"} in app  # fmt: skip
    kept = injected({V + "agent-inject-secret-Config.TXT": "secret/data/a",
                     V + "preserve-secret-case": "true"})  # fmt: skip
    (template,) = generated(kept).secrets.templates  # type: ignore[union-attr]
    assert template.destination == "/secrets/Config.TXT"


def test_the_chosen_containers_and_the_init_containers_get_the_files() -> None:
    pod = injected(
        {V + "agent-inject-secret-db": "secret/data/db", V + "agent-inject-containers": "worker"},
        initContainers=[{"name": "migrate", "image": "migrate:1"}],
    )
    vault = {"name": "pillion-secrets", "mountPath": "/vault/secrets", "readOnly": True}
    assert vault in mounts(pod, "worker")
    assert vault not in mounts(pod, "app")
    assert vault in mounts(pod, "migrate")  # it runs after Pillion rendered the files
    names = [c["name"] for c in pod["spec"]["initContainers"]]
    assert names.index("pillion") < names.index("migrate")


def test_commands_missing_keys_and_process_namespace() -> None:
    pod = injected({
        V + "agent-inject-secret-db": "secret/data/db",
        V + "agent-inject-command-db": "kill -HUP $(pidof app)",
        V + "error-on-missing-key-db": "true",
        V + "agent-share-process-namespace": "true",
    })  # fmt: skip
    config = generated(pod)
    (template,) = config.secrets.templates  # type: ignore[union-attr]
    assert template.error_on_missing_key
    assert template.notify == ["vault-command-db"]
    (target,) = config.app.notify
    assert target.name == "vault-command-db"
    assert target.exec is not None
    assert target.exec.command == ["/bin/sh", "-c", "kill -HUP $(pidof app)"]
    assert pod["spec"]["shareProcessNamespace"] is True


def test_the_login_and_vault_tls_settings() -> None:
    pod = injected({
        V + "agent-inject-secret-db": "secret/data/db",
        V + "role": "web-role",
        V + "auth-path": "auth/k8s-prod",
        V + "namespace": "team-a",
        V + "tls-secret": "vault-tls",
        V + "ca-cert": "/vault/tls/ca.crt",
        V + "tls-skip-verify": "false",
        V + "client-timeout": "30s",
        V + "auth-max-backoff": "1m",
        V + "template-static-secret-render-interval": "2m",
        V + "agent-extra-secret": "extra",
    })  # fmt: skip
    vault = generated(pod).secrets.vault  # type: ignore[union-attr]
    assert vault is not None
    assert (vault.auth.method, vault.auth.role, vault.auth.mount) == (
        "kubernetes", "web-role", "k8s-prod")  # fmt: skip
    assert (vault.namespace, vault.ca, vault.timeout, vault.max_backoff) == (
        "team-a", "/vault/tls/ca.crt", 30.0, 60.0)  # fmt: skip
    assert vault.static_secret_render_interval == 120.0
    assert {"name": "pillion-vault-tls", "secret": {"secretName": "vault-tls"}} in (
        pod["spec"]["volumes"])  # fmt: skip
    assert {"name": "pillion-vault-tls", "mountPath": "/vault/tls", "readOnly": True} in mounts(
        pod, "pillion"
    )
    assert {"name": "pillion-vault-extra", "mountPath": "/vault/custom", "readOnly": True} in (
        mounts(pod, "pillion"))  # fmt: skip
    jwt = injected({V + "agent-inject-secret-db": "secret/data/db", V + "auth-type": "jwt",
                    V + "auth-config-path": "/var/run/secrets/tokens/vault",
                    V + "auth-config-role": "jwt-role"})  # fmt: skip
    vault = generated(jwt).secrets.vault  # type: ignore[union-attr]
    assert vault is not None
    assert (vault.auth.method, vault.auth.role, vault.auth.token_file) == (
        "jwt", "jwt-role", "/var/run/secrets/tokens/vault")  # fmt: skip


def test_copy_volume_mounts_gives_pillion_the_containers_mounts() -> None:
    app = {
        "name": "app",
        "image": "app:1",
        "volumeMounts": [
            {"name": "templates", "mountPath": "/etc/templates"},
            {
                "name": "kube-api-access",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            },
        ],
    }
    pod = injected(
        {V + "agent-inject-template-file-db": "/etc/templates/db.tmpl",
         V + "agent-copy-volume-mounts": "app"},
        containers=[app],
    )  # fmt: skip
    (template,) = generated(pod).secrets.templates  # type: ignore[union-attr]
    assert (template.template_file, template.syntax) == ("/etc/templates/db.tmpl", "go")
    sidecar = mounts(pod, "pillion")
    assert {"name": "templates", "mountPath": "/etc/templates"} in sidecar
    assert sum(m["name"] == "kube-api-access" for m in sidecar) == 1  # Pillion's own, once
    ok, reason, _ = inject({V + "agent-inject-secret-db": "secret/data/db",
                            V + "agent-copy-volume-mounts": "nobody"})  # fmt: skip
    assert not ok
    assert "agent-copy-volume-mounts: the pod has no container named nobody" in reason


def test_the_status_reports_what_is_not_applicable_and_unknown() -> None:
    pod = injected({
        V + "agent-inject-secret-db": "secret/data/db",
        V + "agent-pre-populate-only": "true",
        V + "agent-limits-cpu": "250m",
        V + "agent-cache-enable": "true",
        V + "agent-made-up": "x",
    })  # fmt: skip
    report = status(pod)["vault-k8s"]
    assert V + "agent-inject-secret-db" in report["honoured"]
    assert set(report["not_applicable"]) == {
        V + "agent-pre-populate-only",
        V + "agent-limits-cpu",
        V + "agent-cache-enable",
    }
    assert "keeping the files fresh" in report["not_applicable"][V + "agent-pre-populate-only"]
    assert report["unknown"] == [V + "agent-made-up"]


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        (
            {V + "agent-inject-token": "true"},
            "agent-inject-token: not supported: Pillion does not hand its Vault token to the app",
        ),
        (
            {V + "agent-configmap": "vault-agent-config"},
            "agent-configmap: not supported: Vault Agent's own config (HCL) is not read",
        ),
        (
            {V + "tls-skip-verify": "true"},
            "tls-skip-verify: not supported: Pillion always checks Vault's certificate",
        ),
        ({V + "auth-type": "gcp"}, "auth-type: not supported: 'gcp'"),
        (
            {V + "auth-config-remove-jwt-after-reading": "true"},
            "auth-config-remove-jwt-after-reading: not supported with auth-type kubernetes",
        ),
        ({V + "agent-template-left-delim-db": "[["}, "agent-template-left-delim-db: not supported"),
        (
            {
                V + "agent-inject-template-db": '{{ with secret "x/y" }}{{ file "/etc/passwd" }}'
                "{{ end }}"
            },
            'function \\"file\\" is not supported',
        ),
        ({V + "agent-inject-perms-db": "rw-r--r--"}, "agent-inject-perms-db: expected an octal"),
        ({V + "agent-inject-default-template": "yaml"}, "expected map or json"),
        ({V + "agent-inject-file-db": "../../etc/passwd"}, "agent-inject-file-db: expected a file"),
        ({V + "secret-volume-path": "relative"}, "secret-volume-path: expected an absolute"),
        ({V + "client-timeout": "soon"}, "client-timeout: expected a duration"),
    ],
)
def test_what_would_not_work_as_written_is_refused_naming_it(
    annotations: dict[str, str], reason: str
) -> None:
    ok, why, pod = inject({V + "agent-inject-secret-db": "secret/data/db", **annotations})
    assert not ok
    assert reason in json.dumps(why), why
    assert status(pod)["injected"] is False
    assert "pillion" not in json.dumps(pod["spec"])
