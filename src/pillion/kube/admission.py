"""AdmissionReview v1 in, AdmissionReview v1 out. No I/O.

The webhook's whole decision: a Pod CREATE gets the JSONPatch that injects
Pillion (or none, with the reason in the pod's ``pillion.dev/status``
annotation); anything else is allowed unchanged. A request that is not a
well-formed AdmissionReview never crashes the server: it gets an answer whose
``allowed`` follows the configured policy (``allow`` by default, so a broken
webhook cannot block a rollout) and a message saying what was wrong.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pillion.kube.inject import InjectSettings, inject_pod, json_patch

__all__ = ["MAX_REVIEW_BYTES", "Reviewed", "review"]

MAX_REVIEW_BYTES = 3 * 1024 * 1024  # the API server's own limit on an object is about 1.5MiB
API_VERSION = "admission.k8s.io/v1"
ENABLED = {"pillion.dev/inject": "enabled"}  # the webhook's namespaceSelector matched


@dataclass(frozen=True)
class Reviewed:
    answer: dict[str, Any]  # the AdmissionReview to send back
    result: str  # injected, skipped, refused (a malformed review)
    reason: str  # a short, bounded reason for the metrics label


def _answer(uid: str, allowed: bool, message: str = "",
            patch: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if message:
        response["status"] = {"message": message, "code": 200 if allowed else 400}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def review(
    body: bytes,
    settings: InjectSettings,
    policy: Literal["allow", "deny"] = "allow",
) -> Reviewed:
    """The answer to one AdmissionReview request body."""

    def refused(reason: str, message: str, uid: str = "") -> Reviewed:
        text = f"pillion: {message}"
        return Reviewed(_answer(uid, policy == "allow", text), "refused", reason)

    if len(body) > MAX_REVIEW_BYTES:
        return refused("too_large", f"the review is over {MAX_REVIEW_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        return refused("not_json", "the body is not JSON")
    if not isinstance(document, dict):
        return refused("malformed", "the body is not an AdmissionReview object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != "AdmissionReview":
        return refused("wrong_version", f"expected an {API_VERSION} AdmissionReview")
    request = document.get("request")
    if not isinstance(request, dict):
        return refused("no_request", "the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        return refused("no_uid", "the request has no uid")
    kind = request.get("kind")
    if not isinstance(kind, dict) or kind.get("kind") != "Pod" or kind.get("group", "") != "":
        return Reviewed(_answer(uid, True), "skipped", "not_a_pod")
    if request.get("operation", "CREATE") != "CREATE":
        return Reviewed(_answer(uid, True), "skipped", "not_a_create")
    pod = request.get("object")
    if not isinstance(pod, dict):
        return refused("no_object", "the request has no pod object", uid)
    namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace")
    token = secrets.token_urlsafe(18)  # per pod: the app's preStop hook drains Pillion
    decision = inject_pod(pod, settings, str(namespace or "default"), ENABLED, token)
    patch = json_patch(pod, decision.pod)
    reason = decision.reason.split(":", 1)[0][:64]
    return Reviewed(
        _answer(uid, True, "" if decision.injected else f"pillion: {decision.reason}", patch),
        "injected" if decision.injected else "skipped",
        reason,
    )
