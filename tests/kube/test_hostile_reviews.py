"""AdmissionReviews the API server never sends, answered as malformed reviews by
the policy, never by an exception: NaN, text that is not UTF-8 or has a lone
surrogate, nesting too deep, pod fields of the wrong type. And an annotation
whose secret path the generated config could not use leaves the pod alone."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest

from pillion.kube.admission import MAX_DEPTH, review
from pillion.kube.inject import InjectSettings, inject_pod

SETTINGS = InjectSettings()


def body(pod: object) -> bytes:
    request = {
        "uid": "u-1",
        "operation": "CREATE",
        "namespace": "shop",
        "object": pod,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
    }
    document = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(document).encode()


def refused(data: bytes, policy: Literal["allow", "deny"] = "allow") -> tuple[str, dict[str, Any]]:
    reviewed = review(data, SETTINGS, policy)
    assert reviewed.result == "refused"
    json.dumps(reviewed.answer, allow_nan=False)
    response: dict[str, Any] = reviewed.answer["response"]
    assert response["allowed"] is (policy == "allow")
    return reviewed.reason, response


APP = {"name": "web", "image": "shop/web:1"}


@pytest.mark.parametrize("policy", ["allow", "deny"])
def test_nan_is_not_json(policy: Literal["allow", "deny"]) -> None:
    data = body({"spec": {"containers": [{**APP, "x": 1}]}}).replace(b'"x": 1', b'"x": NaN')
    assert refused(data, policy)[0] == "not_json"


def test_text_that_is_not_utf8_is_not_json() -> None:
    data = body({"metadata": {"annotations": {"a": "\x00"}}}).replace(b"\\u0000", b"\xed\xa0\x80")
    assert refused(data)[0] == "not_json"


def test_a_lone_surrogate_is_not_unicode() -> None:
    data = body({"metadata": {"annotations": {"pillion.dev/logs": "/var/log/\ud800/*.log"}}})
    assert b"\\ud800" in data
    assert refused(data)[0] == "not_json"


@pytest.mark.parametrize("depth", [MAX_DEPTH, 900, 100_000])
def test_nesting_too_deep_is_refused(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    data = body({"metadata": {"labels": {"x": "PLACE"}}}).replace(b'"PLACE"', nested)
    assert refused(data)[0] == "too_deep"


@pytest.mark.parametrize(
    ("pod", "where"),
    [
        ({"metadata": [1]}, "metadata is not an object"),
        ({"metadata": {"annotations": [["a", "b"]]}}, "metadata.annotations is not an object"),
        (
            {"metadata": {"annotations": {"pillion.dev/inject": 1}}},
            "annotations['pillion.dev/inject']",
        ),
        ({"metadata": {"namespace": {"a": 1}}}, "metadata.namespace is not a string"),
        ({"spec": []}, "spec is not an object"),
        ({"spec": {"containers": [1]}}, "spec.containers[0] is not an object"),
        ({"spec": {"containers": [{"name": ["x"]}]}}, "spec.containers[0].name is not a string"),
        ({"spec": {"containers": {"a": 1}}}, "spec.containers is not a list"),
        ({"spec": {"containers": [{"volumeMounts": [{"mountPath": 1}]}]}}, "mountPath"),
        ({"spec": {"containers": [{"volumeMounts": [None]}]}}, "volumeMounts[0] is not"),
        ({"spec": {"containers": [{"lifecycle": [1]}]}}, "lifecycle is not an object"),
        ({"spec": {"initContainers": [{"securityContext": "x"}]}}, "securityContext"),
        ({"spec": {"volumes": [None]}}, "spec.volumes[0] is not an object"),
        ({"spec": {"securityContext": [], "serviceAccountName": 3}}, "spec.securityContext"),
        ({"spec": {"serviceAccountName": 3}}, "spec.serviceAccountName is not a string"),
    ],
)
def test_a_pod_with_fields_of_the_wrong_type_is_refused(pod: dict[str, Any], where: str) -> None:
    reason, response = refused(body(pod))
    assert reason == "malformed_pod"
    assert where in response["status"]["message"]
    decision = inject_pod(pod, SETTINGS, "shop", {"pillion.dev/inject": "enabled"})
    assert not decision.injected
    assert decision.reason.startswith("malformed pod: ")


def test_a_secret_path_without_a_mount_leaves_the_pod_alone() -> None:
    pod = {
        "metadata": {"annotations": {"pillion.dev/secret-db": "credentials"}},
        "spec": {"containers": [APP]},
    }
    reviewed = review(body(pod), SETTINGS)
    assert reviewed.result == "skipped"
    assert "pillion.dev/secret-db" in reviewed.answer["response"]["status"]["message"]
    assert (
        review(
            body({**pod, "metadata": {"annotations": {"pillion.dev/secret-db": "kv/db"}}}), SETTINGS
        ).result
        == "injected"
    )
