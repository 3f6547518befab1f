"""Injection into manifests: the pod template of each workload kind, and ``List``s.
No I/O (``pillion inject`` reads and prints; this only transforms documents).

Offline injection is explicit: the namespace is taken as enabled (as with
``istioctl kube-inject``), so only a pod's own ``pillion.dev/inject: "false"``,
a protected namespace or an invalid annotation leaves it alone.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pillion.kube.inject import Decision, InjectSettings, inject_pod

__all__ = ["OFFLINE_NAMESPACE_LABELS", "Injected", "inject_documents", "inject_manifest"]

OFFLINE_NAMESPACE_LABELS: Mapping[str, str] = {"pillion.dev/inject": "enabled"}

# Where each kind keeps its pod template (a Pod is its own template).
TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True)
class Injected:
    """One pod template's outcome: ``where`` names it, e.g. ``Deployment default/web``."""

    where: str
    decision: Decision


def inject_manifest(
    document: Mapping[str, Any],
    settings: InjectSettings,
    namespace_labels: Mapping[str, str] | None = OFFLINE_NAMESPACE_LABELS,
    *,
    prestop_tokens: bool = True,
) -> tuple[dict[str, Any], list[Injected]]:
    """The document with every pod template in it injected (items of a ``List``
    too), and the decision for each; other kinds come back unchanged. With
    ``prestop_tokens``, each template gets a random token of its own for the
    app's preStop hook (see ``inject_pod``)."""
    result: dict[str, Any] = copy.deepcopy(dict(document))
    kind = result.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(result.get("items"), list):
        outcomes: list[Injected] = []
        items = []
        for item in result["items"]:
            if isinstance(item, Mapping):
                injected, found = inject_manifest(
                    item, settings, namespace_labels, prestop_tokens=prestop_tokens
                )
                items.append(injected)
                outcomes += found
            else:
                items.append(item)
        result["items"] = items
        return result, outcomes
    path = TEMPLATE_PATHS.get(kind) if isinstance(kind, str) else None
    metadata = result.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    where = f"{kind} {namespace}/{metadata.get('name', '')}"
    if path is None:
        template = (result.get("spec") or {}).get("template") if isinstance(
            result.get("spec"), Mapping) else None  # fmt: skip
        if isinstance(template, Mapping) and "containers" in (template.get("spec") or {}):
            # a workload of a kind this file does not know (OpenShift's DeploymentConfig,
            # an operator's resource): passed through, and said so
            kinds = ", ".join(TEMPLATE_PATHS)
            reason = (f"kind {kind} is passed through unchanged (injected here: {kinds}); "
                      "the webhook injects the pods it makes")  # fmt: skip
            return result, [Injected(where, Decision(False, reason, dict(template)))]
        return result, []
    parent: Any = result
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, Mapping) else None
    template = parent.get(path[-1]) if path and isinstance(parent, Mapping) else result
    if not isinstance(template, Mapping):
        return result, []
    token = secrets.token_urlsafe(18) if prestop_tokens else None
    decision = inject_pod(template, settings, namespace, namespace_labels, token)
    if path:
        parent[path[-1]] = decision.pod
        return result, [Injected(where, decision)]
    return decision.pod, [Injected(where, decision)]


def inject_documents(
    documents: Iterable[Mapping[str, Any]],
    settings: InjectSettings,
    namespace_labels: Mapping[str, str] | None = OFFLINE_NAMESPACE_LABELS,
    *,
    prestop_tokens: bool = True,
) -> tuple[list[dict[str, Any]], list[Injected]]:
    """``inject_manifest`` over a multi-document stream, in order."""
    results: list[dict[str, Any]] = []
    outcomes: list[Injected] = []
    for document in documents:
        injected, found = inject_manifest(
            document, settings, namespace_labels, prestop_tokens=prestop_tokens
        )
        results.append(injected)
        outcomes += found
    return results, outcomes
