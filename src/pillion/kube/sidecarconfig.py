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
from pillion.kube.annotations import PodAnnotations

__all__ = ["AppMetrics", "SecretAccess", "generated_config"]

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
    if wanted.secrets:
        config["secrets"] = {
            "vault": {
                "address": vault_address,
                # the token the kubelet mounts into every container, named to be seen
                "auth": {
                    "method": "kubernetes",
                    "role": vault_role,
                    "token_file": SERVICE_ACCOUNT_TOKEN,
                },
            },
            "sources": [s.source() for s in wanted.secrets],
            "templates": [
                {
                    "name": s.name,
                    "destination": f"{SECRETS_DIR}/{s.name}",
                    **(
                        {"template": s.template}
                        if s.template is not None
                        else {"format": "json", "source": s.name}
                    ),
                    "mode": access.mode,
                    **({"group": access.group} if access.group is not None else {}),
                }
                for s in wanted.secrets
            ],
        }
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
