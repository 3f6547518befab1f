"""``pillion install``: the injector's manifests, printed (like ``linkerd install``).

A namespace, a service account, the webhook Deployment (2 replicas, spread
across nodes, a PodDisruptionBudget, restricted security context), its Service,
and the MutatingWebhookConfiguration (``sideEffects: None``, ``timeoutSeconds:
5``, ``reinvocationPolicy: IfNeeded``, opt-in namespaces labelled
``pillion.dev/inject=enabled``, the failure policy chosen). The serving
certificate is either made here with the dev CA (a Secret, and the CA as
``caBundle``) or left to cert-manager (a self-signed Issuer, a Certificate,
and ``cert-manager.io/inject-ca-from``). No I/O but the key generation.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["InstallSettings", "manifests"]

NAME = "pillion-webhook"
PORT = 8443
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "pillion"}


@dataclass(frozen=True)
class InstallSettings:
    namespace: str = "pillion-system"
    image: str = "ghcr.io/pillion/pillion:latest"
    failure_policy: Literal["Ignore", "Fail"] = "Ignore"
    cert_manager: bool = False
    replicas: int = 2


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _deployment(s: InstallSettings) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz", "port": PORT, "scheme": "HTTPS"}, "periodSeconds": 5}
    container = {
        "name": "webhook",
        "image": s.image,
        "args": [
            "webhook",
            "--listen",
            f"0.0.0.0:{PORT}",
            "--cert",
            "/certs/tls.crt",
            "--key",
            "/certs/tls.key",
            "--image",
            s.image,
            "--injector-namespace",
            s.namespace,
        ],
        "ports": [{"name": "https", "containerPort": PORT}],
        "readinessProbe": probe,
        "livenessProbe": probe,
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "128Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1337,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "certs", "mountPath": "/certs", "readOnly": True}],
    }
    spread = {
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": LABELS},
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": s.namespace, "labels": LABELS},
        "spec": {
            "replicas": s.replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "serviceAccountName": NAME,
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [spread]
                        }
                    },
                    "containers": [container],
                    "volumes": [{"name": "certs", "secret": {"secretName": f"{NAME}-tls"}}],
                },
            },
        },
    }


def _webhook(s: InstallSettings, ca_bundle: bytes | None) -> dict[str, Any]:
    client: dict[str, Any] = {
        "service": {"name": NAME, "namespace": s.namespace, "path": "/inject", "port": 443}
    }
    metadata: dict[str, Any] = {"name": "pillion-injector", "labels": LABELS}
    if ca_bundle is not None:
        client["caBundle"] = _b64(ca_bundle)
    else:
        metadata["annotations"] = {"cert-manager.io/inject-ca-from": f"{s.namespace}/{NAME}"}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [
            {
                "name": "inject.pillion.dev",
                "admissionReviewVersions": ["v1"],
                "clientConfig": client,
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"pillion.dev/inject": "enabled"}},
                "objectSelector": {
                    "matchExpressions": [
                        {
                            "key": "app.kubernetes.io/part-of",
                            "operator": "NotIn",
                            "values": ["pillion"],
                        }
                    ]
                },
                "sideEffects": "None",
                "timeoutSeconds": 5,
                "failurePolicy": s.failure_policy,
                "reinvocationPolicy": "IfNeeded",
                "matchPolicy": "Equivalent",
            }
        ],
    }


def manifests(settings: InstallSettings) -> list[dict[str, Any]]:
    """Every object, in the order to apply them."""
    s = settings
    service_dns = f"{NAME}.{s.namespace}.svc"
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": s.namespace,
                "labels": {**LABELS, "pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": s.namespace, "labels": LABELS},
        },
    ]
    ca_bundle: bytes | None = None
    if s.cert_manager:
        documents += [
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Issuer",
                "metadata": {"name": f"{NAME}-selfsigned", "namespace": s.namespace},
                "spec": {"selfSigned": {}},
            },
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": {"name": NAME, "namespace": s.namespace},
                "spec": {
                    "secretName": f"{NAME}-tls",
                    "dnsNames": [service_dns],
                    "issuerRef": {"name": f"{NAME}-selfsigned", "kind": "Issuer"},
                },
            },
        ]
    else:
        from pillion.tls.devca import issue, new_ca  # cryptography: only when used

        ca = new_ca("Pillion injector CA")
        serving = issue(ca, dns_names=(service_dns, f"{service_dns}.cluster.local"))
        ca_bundle = ca.cert_pem
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": f"{NAME}-tls", "namespace": s.namespace, "labels": LABELS},
                "data": {
                    "tls.crt": _b64(serving.cert_pem),
                    "tls.key": _b64(serving.key_pem),
                    "ca.crt": _b64(ca.cert_pem),
                },
            }
        )
    documents += [
        _deployment(s),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": NAME, "namespace": s.namespace, "labels": LABELS},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": LABELS}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": s.namespace, "labels": LABELS},
            "spec": {
                "selector": LABELS,
                "ports": [{"name": "https", "port": 443, "targetPort": PORT}],
            },
        },
        _webhook(s, ca_bundle),
    ]
    return documents
