"""``pillion install``: the injector's manifests, printed (like ``linkerd install``).

A namespace, a service account, the webhook Deployment (2 replicas, spread
across nodes, a PodDisruptionBudget, restricted security context), its Service,
and the MutatingWebhookConfiguration (``sideEffects: None``, ``timeoutSeconds:
5``, ``reinvocationPolicy: IfNeeded``, opt-in namespaces labelled
``pillion.dev/inject=enabled``, the failure policy chosen). The serving
certificate is either made here with the dev CA (a Secret, and the CA as
``caBundle``) or left to cert-manager (a self-signed Issuer, a Certificate,
and ``cert-manager.io/inject-ca-from``). No I/O but the key generation.

Revisions: ``--revision NAME`` renders a second, independent injector (every name
suffixed ``-NAME``) that takes the pods of namespaces labelled
``pillion.dev/rev=NAME`` and the pods so labelled; the default injector takes
neither. ``--tag T --revision NAME`` renders only a webhook configuration that
sends what is labelled ``pillion.dev/rev=T`` to that revision's injector, so a
namespace can follow a moving name. Applied together, two revisions' and tags'
objects never share a name (but the namespace) and their selectors never match the
same pod.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

from pillion import __version__

__all__ = ["InstallSettings", "manifests", "tag_manifests"]

BASE_NAME = "pillion-webhook"
PORT = 8443
REVISION_LABEL = "pillion.dev/rev"
_NOT_PILLION = {"key": "app.kubernetes.io/part-of", "operator": "NotIn", "values": ["pillion"]}
_NO_REVISION = {"key": REVISION_LABEL, "operator": "DoesNotExist"}


@dataclass(frozen=True)
class InstallSettings:
    namespace: str = "pillion-system"
    image: str = f"ghcr.io/pillion/pillion:{__version__}"
    failure_policy: Literal["Ignore", "Fail"] = "Ignore"
    cert_manager: bool = False
    replicas: int = 2
    revision: str = "default"

    @property
    def name(self) -> str:
        """The injector's Deployment, Service, Secret... name."""
        return BASE_NAME if self.revision == "default" else f"{BASE_NAME}-{self.revision}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": BASE_NAME,
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/part-of": "pillion",
            "pillion.dev/revision": self.revision,
        }


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
            "--revision",
            s.revision,
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
            "labelSelector": {"matchLabels": s.labels},
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": s.name, "namespace": s.namespace, "labels": s.labels},
        "spec": {
            "replicas": s.replicas,
            "selector": {"matchLabels": s.labels},
            "template": {
                "metadata": {"labels": s.labels},
                "spec": {
                    "serviceAccountName": s.name,
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [spread]
                        }
                    },
                    "containers": [container],
                    "volumes": [{"name": "certs", "secret": {"secretName": f"{s.name}-tls"}}],
                },
            },
        },
    }


def _webhook(s: InstallSettings, ca_bundle: bytes | None, tag: str | None = None) -> dict[str, Any]:
    """The MutatingWebhookConfiguration: of the default injector, of a revision, or
    of a tag pointing at a revision (``tag``)."""
    path = "/inject" if tag is None else f"/inject/tag/{tag}"
    client: dict[str, Any] = {
        "service": {"name": s.name, "namespace": s.namespace, "path": path, "port": 443}
    }
    name = "pillion-injector" if s.revision == "default" else f"pillion-injector-{s.revision}"
    if tag is not None:
        name = f"pillion-injector-tag-{tag}"
    metadata: dict[str, Any] = {"name": name, "labels": s.labels}
    if ca_bundle is not None:
        client["caBundle"] = _b64(ca_bundle)
    else:
        metadata["annotations"] = {"cert-manager.io/inject-ca-from": f"{s.namespace}/{s.name}"}
    common = {
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
        "sideEffects": "None",
        "timeoutSeconds": 5,
        "failurePolicy": s.failure_policy,
        "reinvocationPolicy": "IfNeeded",
        "matchPolicy": "Equivalent",
    }
    selected = tag if tag is not None else s.revision
    if selected == "default":
        # namespaces that opted in and name no revision; pods that name none
        webhooks = [
            {
                "name": "inject.pillion.dev",
                "namespaceSelector": {
                    "matchLabels": {"pillion.dev/inject": "enabled"},
                    "matchExpressions": [_NO_REVISION],
                },
                "objectSelector": {"matchExpressions": [_NOT_PILLION, _NO_REVISION]},
                **common,
            }
        ]
    else:
        # the pods of a namespace labelled with the revision, unless they name
        # another; and the pods labelled with it, wherever they are
        webhooks = [
            {
                "name": f"namespace.{selected}.inject.pillion.dev",
                "namespaceSelector": {"matchLabels": {REVISION_LABEL: selected}},
                "objectSelector": {"matchExpressions": [_NOT_PILLION, _NO_REVISION]},
                **common,
            },
            {
                "name": f"pod.{selected}.inject.pillion.dev",
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": ["kube-system", "kube-public", s.namespace],
                        }
                    ]
                },
                "objectSelector": {
                    "matchLabels": {REVISION_LABEL: selected},
                    "matchExpressions": [_NOT_PILLION],
                },
                **common,
            },
        ]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": webhooks,
    }


def tag_manifests(
    settings: InstallSettings, tag: str, ca_bundle: bytes | None
) -> list[dict[str, Any]]:
    """A tag: the webhook configuration that sends the pods of namespaces (or pods)
    labelled ``pillion.dev/rev=<tag>`` to ``settings.revision``'s injector. Its CA is
    ``ca_bundle`` (the revision's), or cert-manager's when None."""
    return [_webhook(settings, ca_bundle, tag)]


def manifests(settings: InstallSettings) -> list[dict[str, Any]]:
    """Every object, in the order to apply them."""
    s = settings
    service_dns = f"{s.name}.{s.namespace}.svc"
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": s.namespace,
                "labels": {
                    "app.kubernetes.io/part-of": "pillion",
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": s.name, "namespace": s.namespace, "labels": s.labels},
        },
    ]
    ca_bundle: bytes | None = None
    if s.cert_manager:
        documents += [
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Issuer",
                "metadata": {
                    "name": f"{s.name}-selfsigned",
                    "namespace": s.namespace,
                    "labels": s.labels,
                },
                "spec": {"selfSigned": {}},
            },
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": {"name": s.name, "namespace": s.namespace, "labels": s.labels},
                "spec": {
                    "secretName": f"{s.name}-tls",
                    "dnsNames": [service_dns],
                    "issuerRef": {"name": f"{s.name}-selfsigned", "kind": "Issuer"},
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
                "metadata": {"name": f"{s.name}-tls", "namespace": s.namespace, "labels": s.labels},
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
            "metadata": {"name": s.name, "namespace": s.namespace, "labels": s.labels},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": s.labels}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": s.name, "namespace": s.namespace, "labels": s.labels},
            "spec": {
                "selector": s.labels,
                "ports": [{"name": "https", "port": 443, "targetPort": PORT}],
            },
        },
        _webhook(s, ca_bundle),
    ]
    return documents
