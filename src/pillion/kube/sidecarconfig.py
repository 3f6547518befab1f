"""The ``pillion.yaml`` generated from a pod's annotations, for pods without a
``pillion.dev/config`` ConfigMap. No I/O.

The text goes into the pod's ``pillion.dev/generated-config`` annotation and reaches
Pillion as a file through the Downward API volume (``/etc/podinfo/pillion.yaml``):
a real file, so ``pillion run -c`` needs no special mode, and the whole
configuration is visible with ``kubectl get pod -o yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from pillion.config.models import CONFIG_FORMAT
from pillion.config.secrets import SERVICE_ACCOUNT_TOKEN
from pillion.config.units import format_duration
from pillion.kube.annotations import PodAnnotations
from pillion.kube.vaultk8s import VaultPod, VaultSecret

__all__ = ["AppMetrics", "SecretAccess", "generated_config", "vault_subdirectory"]

SECRETS_DIR = "/secrets"
DATA_DIR = "/var/lib/pillion"


@dataclass(frozen=True)
class AppMetrics:
    """Where the app's own Prometheus endpoint was, before the annotations moved to Pillion."""

    port: int
    path: str


@dataclass(frozen=True)
class SecretAccess:
    """Who may read the rendered secret files besides Pillion: a group (the pod's
    ``fsGroup``, or the app's ``runAsGroup``, which Pillion then runs as), files
    0440; or, when the pod names no group, anyone in the pod, files 0444."""

    group: int | None

    @property
    def mode(self) -> str:
        return "0440" if self.group is not None else "0444"


def generated_config(
    wanted: PodAnnotations,
    app_port: int,
    app_metrics: AppMetrics | None,
    vault_address: str,
    vault_role: str,
    access: SecretAccess = SecretAccess(None),
) -> str:
    """The YAML text of ``pillion.yaml`` for these annotations."""
    # the format it is written in: a sidecar that reads an older one refuses it by name
    config: dict[str, Any] = {"version": CONFIG_FORMAT, "app": {"port": app_port}}
    if wanted.capture != "none":
        # where pillion-init redirects the pod's TCP, for both families (an IPv6
        # listener is skipped where the pod has no IPv6)
        proxy: dict[str, Any] = {
            "inbound": [
                {"name": "inbound"},  # 0.0.0.0:15006
                {"name": "inbound-ipv6", "listen": "[::]:15006"},
            ]
        }
        if wanted.capture == "all":
            proxy["outbound"] = [
                {"name": "outbound", "original_destination": {}},  # 127.0.0.1:15001
                {"name": "outbound-ipv6", "listen": "[::1]:15001", "original_destination": {}},
            ]
        config["proxy"] = proxy
    if wanted.log_level is not None:
        config["telemetry"] = {"log_level": wanted.log_level}
    if wanted.any_secrets:
        config["secrets"] = _secrets(wanted, vault_address, vault_role, access)
        commands = _commands(wanted.vault)
        if commands:
            config["app"]["notify"] = commands
    if wanted.log_level is None and wanted.vault is not None and wanted.vault.log_level:
        config["telemetry"] = {"log_level": wanted.vault.log_level}
    if wanted.logs is not None:
        config["logs"] = {
            "inputs": [{"name": "app", "paths": [wanted.logs]}],
            "outputs": [{"name": "stdout", "type": "stdout"}],
            "checkpoints": f"{DATA_DIR}/logs.db",
            "disk_buffer": None,
            "kubernetes": {
                "labels_file": "/etc/podinfo/labels",
                "annotations_file": "/etc/podinfo/annotations",
            },
        }
    if app_metrics is not None:
        url = f"http://127.0.0.1:{app_metrics.port}{app_metrics.path}"
        config["exporters"] = {"merge_app": {"url": url}}
    return yaml.safe_dump(config, sort_keys=False)


def vault_subdirectory(vault: VaultPod, volume_path: str) -> str:
    """Where, in the secrets volume, the files the app sees at ``volume_path`` are:
    the volume's top for the pod's path (``secret-volume-path``), else a directory
    the app containers mount by ``subPath``."""
    paths = vault.volume_paths()
    return "" if volume_path == paths[0] else f"vault-{paths.index(volume_path)}"


def _secrets(
    wanted: PodAnnotations, vault_address: str, vault_role: str, access: SecretAccess
) -> dict[str, Any]:
    vault = wanted.vault
    server: dict[str, Any] = {"address": vault_address, "auth": _login(vault, vault_role)}
    if vault is not None:
        for key, text in (("namespace", vault.namespace), ("ca", vault.ca_file)):
            if text is not None:
                server[key] = text
        for key, seconds in (
            ("timeout", vault.timeout),
            ("max_backoff", vault.max_backoff),
            ("static_secret_render_interval", vault.static_secret_render_interval),
        ):
            if seconds is not None:
                server[key] = format_duration(seconds)
    group = {"group": access.group} if access.group is not None else {}
    templates: list[dict[str, Any]] = [
        {
            "name": s.name,
            "destination": f"{SECRETS_DIR}/{s.name}",
            **_jinja_text(s.template, s.name),
            "mode": access.mode,
            **group,
        }
        for s in wanted.secrets
    ]
    if vault is not None:
        templates += [_vault_template(vault, s, access) for s in vault.secrets]
    return {
        "vault": server,
        "sources": [s.source() for s in wanted.secrets],
        "templates": templates,
    }


def _login(vault: VaultPod | None, vault_role: str) -> dict[str, Any]:
    """``secrets.vault.auth``: kubernetes with the token the kubelet mounts into every
    container (named to be seen), unless vault-k8s' annotations say otherwise."""
    login = vault.login if vault is not None else None
    if login is not None and login.method == "approle":
        auth: dict[str, Any] = {"method": "approle", "role_id_file": login.role_id_file,
                                "secret_id_file": login.secret_id_file}  # fmt: skip
    else:
        auth = {
            "method": login.method if login is not None else "kubernetes",
            "role": login.role if login is not None and login.role is not None else vault_role,
            "token_file": (login.token_file if login is not None else None)
            or SERVICE_ACCOUNT_TOKEN,
        }
    if login is not None and login.mount is not None:
        auth["mount"] = login.mount
    return auth


def _vault_template(vault: VaultPod, secret: VaultSecret, access: SecretAccess) -> dict[str, Any]:
    """A vault-k8s secret as Vault Agent renders it: its Go template, its file
    where the app containers see it under its volume path."""
    subdirectory = vault_subdirectory(vault, secret.volume_path)
    directory = "/".join(filter(None, (SECRETS_DIR, subdirectory)))
    template: dict[str, Any] = {
        "name": secret.name,
        "destination": f"{directory}/{secret.file}",
        "syntax": "go",
        **_go_text(secret),
        "mode": f"{secret.mode:04o}" if secret.mode is not None else access.mode,
    }
    if access.group is not None:
        template["group"] = access.group
    if "/" in secret.file or subdirectory:
        template["create_directories"] = True  # as Vault Agent makes them
    if secret.error_on_missing_key:
        template["error_on_missing_key"] = True
    if secret.command is not None:
        template["notify"] = [f"vault-command-{secret.name}"]
    return template


def _commands(vault: VaultPod | None) -> list[dict[str, Any]]:
    """vault-k8s' ``agent-inject-command-<name>``: run with ``sh -c``, as Vault
    Agent runs a template's command, when its file changes."""
    if vault is None:
        return []
    return [
        {"name": f"vault-command-{s.name}", "exec": {"command": ["/bin/sh", "-c", s.command]}}
        for s in vault.secrets
        if s.command is not None
    ]


def _jinja_text(template: str | None, source: str) -> dict[str, str]:
    return {"template": template} if template is not None else {"format": "json", "source": source}


def _go_text(secret: VaultSecret) -> dict[str, str | None]:
    if secret.template is not None:
        return {"template": secret.template}
    return {"template_file": secret.template_file}
