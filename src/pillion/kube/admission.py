"""AdmissionReview v1 in, AdmissionReview v1 out. No I/O.

The webhook's whole decision: a Pod CREATE gets the JSONPatch that injects
Pillion (or none, with the reason in the pod's ``pillion.dev/status``
annotation); anything else is allowed unchanged. A request that is not a
well-formed AdmissionReview never crashes the server: it gets an answer whose
``allowed`` follows the configured policy (``allow`` by default, so a broken
webhook cannot block a rollout) and a message saying what was wrong. That covers
what the API server never sends: ``NaN``, text that is not UTF-8 or has lone
surrogates (the answer and the generated config must stay valid), nesting deeper
than ``MAX_DEPTH``, a pod whose fields have the wrong types (``podshape``).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pillion.kube.inject import VERSION, InjectSettings, inject_pod, json_patch
from pillion.kube.podshape import shape_problem

__all__ = ["MAX_REVIEW_BYTES", "Reviewed", "review"]

MAX_REVIEW_BYTES = 3 * 1024 * 1024  # the API server's own limit on an object is about 1.5MiB
# A pod's deepest fields (managedFields) are about 20 levels down; copying and diffing
# recurse once or twice per level, so this keeps well inside Python's recursion limit.
MAX_DEPTH = 100
API_VERSION = "admission.k8s.io/v1"
ENABLED = {"pillion.dev/inject": "enabled"}  # the webhook's namespaceSelector matched


@dataclass(frozen=True)
class Reviewed:
    answer: dict[str, Any]  # the AdmissionReview to send back
    result: str  # injected, skipped, refused (a malformed review)
    reason: str  # a short, bounded reason for the metrics label
    version: str = ""  # the sidecar version injected (its image's tag); "" when none


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
    tag: str | None = None,
) -> Reviewed:
    """The answer to one AdmissionReview request body."""

    def refused(reason: str, message: str, uid: str = "") -> Reviewed:
        text = f"pillion: {message}"
        return Reviewed(_answer(uid, policy == "allow", text), "refused", reason)

    if len(body) > MAX_REVIEW_BYTES:
        return refused("too_large", f"the review is over {MAX_REVIEW_BYTES} bytes")
    try:
        # strictly UTF-8 (RFC 8259 section 8.1): json.loads would let surrogates through
        document = json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except ValueError:
        return refused("not_json", "the body is not JSON")
    except RecursionError:
        return refused("too_deep", f"the review nests deeper than {MAX_DEPTH} levels")
    unusable = _unusable(document)
    if unusable is not None:
        return refused(*unusable)
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
    problem = shape_problem(pod)
    if problem is not None:
        return refused("malformed_pod", f"malformed pod: {problem}", uid)
    namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace")
    token = secrets.token_urlsafe(18)  # per pod: the app's preStop hook drains Pillion
    decision = inject_pod(pod, settings, str(namespace or "default"), ENABLED, token, tag)
    patch = json_patch(pod, decision.pod)
    reason = decision.reason.split(":", 1)[0][:64]
    return Reviewed(
        _answer(uid, True, "" if decision.injected else f"pillion: {decision.reason}", patch),
        "injected" if decision.injected else "skipped",
        reason,
        (decision.pod["metadata"].get("annotations") or {}).get(VERSION, "")
        if decision.injected
        else "",
    )


def _not_json(constant: str) -> Any:
    """``NaN``, ``Infinity``: Python's json reads them, JSON has no such values."""
    raise ValueError(f"{constant} is not JSON")


def _unusable(document: object) -> tuple[str, str] | None:
    """Why a parsed body cannot be used, walked once: nested deeper than
    ``MAX_DEPTH``, or a string with a lone surrogate (an escape such as ``\\ud800``:
    no Unicode text, and YAML, the generated config's format, refuses it)."""
    stack: list[tuple[object, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and not _is_unicode(value):
                return "not_json", "the body has a string that is not Unicode"
            continue
        if not isinstance(value, dict | list):
            continue
        if depth == MAX_DEPTH:
            return "too_deep", f"the review nests deeper than {MAX_DEPTH} levels"
        children = [*value, *value.values()] if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children)
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
