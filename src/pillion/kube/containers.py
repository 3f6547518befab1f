"""The containers and volumes the injector adds to a pod. No I/O.

Names are fixed (``pillion``, ``pillion-init``, ``pillion-*`` volumes) so that a
pod can be recognised as injected, and so that a clash with the app's own names
is detected instead of silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONFIG_DIR",
    "INIT_NAME",
    "PODINFO_DIR",
    "SIDECAR_NAME",
    "SidecarSpec",
    "init_container",
    "sidecar_container",
]

SIDECAR_NAME = "pillion"
INIT_NAME = "pillion-init"
CONFIG_VOLUME = "pillion-config"
PODINFO_VOLUME = "pillion-podinfo"
SECRETS_VOLUME = "pillion-secrets"
LOGS_VOLUME = "pillion-logs"
DATA_VOLUME = "pillion-data"
LIFECYCLE_VOLUME = "pillion-lifecycle"
CONFIG_DIR = "/etc/pillion"
PODINFO_DIR = "/etc/podinfo"
LIFECYCLE_DIR = "/var/run/pillion"
EXIT_FILE = f"{LIFECYCLE_DIR}/exit"  # classic mode: the app creates it when it is done
PROXY_UID = 1337  # Istio's convention: iptables rules exempt this uid's own traffic
STATUS_PORT = 15020
ADMIN_PORT = 15000
INBOUND_PORT = 15006
OUTBOUND_PORT = 15001


@dataclass(frozen=True)
class SidecarSpec:
    """Everything that varies in the Pillion container."""

    image: str
    config_path: str
    native: bool
    resources: dict[str, dict[str, str]]
    mounts: list[dict[str, Any]]
    app_container: str
    group: int = PROXY_UID  # the app's group when the secrets are shared through it
    env: list[dict[str, Any]] = field(default_factory=list)  # per pod: exit file, token


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": STATUS_PORT},
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def _field_env(name: str, field: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}


def sidecar_container(spec: SidecarSpec) -> dict[str, Any]:
    """The Pillion container: a native sidecar (an init container that keeps running)
    or, in classic mode, a regular container whose postStart hook holds the app's
    start until Pillion has started."""
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": spec.image,
        "args": ["run", "-c", spec.config_path],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            # with the two above, names the pod's directory under the node's /var/log/pods
            _field_env("POD_UID", "metadata.uid"),
            _field_env("NODE_NAME", "spec.nodeName"),
            # The container whose log files Pillion tails (records name it).
            {"name": "CONTAINER_NAME", "value": spec.app_container},
            *spec.env,
        ],
        "ports": [{"name": "pillion-status", "containerPort": STATUS_PORT, "protocol": "TCP"}],
        # Up to 10 minutes to start: the first secrets render can wait for Vault.
        "startupProbe": _probe("/healthz/started", period=1, failures=600),
        "readinessProbe": _probe("/healthz/ready", period=2, failures=3),
        "livenessProbe": _probe("/healthz/live", period=10, failures=3),
        "resources": spec.resources,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
            "runAsGroup": spec.group,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": spec.mounts,
    }
    if spec.native:
        container["restartPolicy"] = "Always"
    else:
        container["lifecycle"] = {"postStart": {"exec": {"command": ["pillion", "wait-started"]}}}
    return container


def prestop_hook(token: str) -> dict[str, Any]:
    """An app container's preStop: Pillion stops taking inbound traffic and answers
    once the requests in flight are done; only then is the app signalled."""
    return {
        "httpGet": {
            "path": "/prestop",
            "port": STATUS_PORT,
            "httpHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}],
        }
    }


def init_container(
    image: str,
    capture: str,
    exclude_inbound_ports: tuple[int, ...] = (),
    exclude_outbound_ports: tuple[int, ...] = (),
    exclude_outbound_cidrs: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``pillion-init``: redirects the pod's traffic to Pillion with iptables, then exits.
    The only part of Pillion that runs as root, with just the two network capabilities."""
    return {
        "name": INIT_NAME,
        "image": image,
        "args": [
            "iptables",
            "--capture",
            capture,
            "--proxy-uid",
            str(PROXY_UID),
            "--inbound-port",
            str(INBOUND_PORT),
            "--outbound-port",
            str(OUTBOUND_PORT),
            "--exclude-inbound-ports",
            ",".join(map(str, (STATUS_PORT, ADMIN_PORT, *exclude_inbound_ports))),
            *(
                ["--exclude-outbound-ports", ",".join(map(str, exclude_outbound_ports))]
                if exclude_outbound_ports
                else []
            ),
            *(
                ["--exclude-outbound-cidrs", ",".join(exclude_outbound_cidrs)]
                if exclude_outbound_cidrs
                else []
            ),
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def podinfo_volume(generated: bool) -> dict[str, Any]:
    """Labels and annotations as files (for log records), and the generated config."""
    items: list[dict[str, Any]] = [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
    ]
    if generated:
        field = "metadata.annotations['pillion.dev/generated-config']"
        items.append({"path": "pillion.yaml", "fieldRef": {"fieldPath": field}})
    return {"name": PODINFO_VOLUME, "downwardAPI": {"items": items}}
