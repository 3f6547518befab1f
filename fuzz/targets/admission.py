"""AdmissionReview JSON to the injection webhook (``pillion.kube.admission``).

Property: ``review`` raises nothing, whatever the body; its answer is an
AdmissionReview v1 that is strict JSON, for the request's uid; a malformed review
is refused, ``allowed`` as the policy says; a patch is a JSONPatch that applies
to the pod that was sent, and the pod it makes has Pillion when the answer says
injected; the generated ``pillion.yaml`` in it is one Pillion accepts.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

import jsonpatch

from fuzz.target import Target
from pillion.config.loader import parse_config
from pillion.kube.admission import review
from pillion.kube.inject import GENERATED_CONFIG, InjectSettings

__all__ = ["TARGET", "check"]

SETTINGS = InjectSettings()
POLICIES: tuple[Literal["allow", "deny"], ...] = ("allow", "deny")


def check(data: bytes) -> None:
    for policy in POLICIES:
        reviewed = review(data, SETTINGS, policy)
        answer = json.loads(json.dumps(reviewed.answer, allow_nan=False))
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        response = answer["response"]
        assert isinstance(response["uid"], str)
        assert isinstance(response["allowed"], bool)
        assert reviewed.result in ("injected", "skipped", "refused")
        assert reviewed.reason
        assert len(reviewed.reason) <= 64
        request = _request(data)
        if response["uid"]:
            assert request is not None
            assert response["uid"] == request.get("uid")
        if reviewed.result == "refused":
            assert response["allowed"] == (policy == "allow")
            assert "patch" not in response
            assert response["status"]["message"].startswith("pillion: ")
            continue
        assert request is not None
        assert response["allowed"] is True
        assert response["uid"] == request["uid"], "the answer is not for this request"
        if "patch" in response:
            _patched(request["object"], response, injected=reviewed.result == "injected")


def _request(data: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    request = document.get("request") if isinstance(document, dict) else None
    return request if isinstance(request, dict) else None


def _patched(pod: dict[str, Any], response: dict[str, Any], *, injected: bool) -> None:
    assert response["patchType"] == "JSONPatch"
    operations = json.loads(base64.b64decode(response["patch"], validate=True))
    result = jsonpatch.apply_patch(pod, operations)
    assert isinstance(result, dict)
    if not injected:
        return
    spec = result["spec"]
    names = [c.get("name") for c in spec.get("initContainers", []) + spec.get("containers", [])]
    assert "pillion" in names, f"injected, but the pod has {names}"
    generated = result["metadata"]["annotations"].get(GENERATED_CONFIG)
    if generated is not None:
        sidecar = next(
            c
            for c in spec.get("initContainers", []) + spec["containers"]
            if c.get("name") == "pillion"
        )
        environ = {e["name"]: str(e.get("value", "")) for e in sidecar.get("env", [])}
        parse_config(generated, "generated-config", environ)  # ConfigError: a broken sidecar


TARGET = Target(
    name="admission",
    summary="AdmissionReview JSON to the injection webhook (pillion.kube.admission)",
    check=check,
    tokens=(
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b",",
        b":",
        b"null",
        b"NaN",
        b"-Infinity",
        b"1e999",
        b'"pillion.dev/inject": "true"',
        b'"pillion.dev/capture": "all"',
        b'"pillion.dev/logs": "/var/log/app/*.log"',
        b'"pillion.dev/secret-db": "kv/db"',
        b'"pillion.dev/native-sidecar": "false"',
        b'"hostNetwork": true',
        b'"operation": "UPDATE"',
        b'"containers": []',
        b'"volumeMounts": [{}]',
        b'"fsGroup": 1000',
        b"\\u0000",
        b"\\ud800",
    ),
    max_len=16 * 1024,
)
