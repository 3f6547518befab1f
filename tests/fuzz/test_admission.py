"""The admission target under Hypothesis: mutated AdmissionReviews through its
check, and reviews of pods built from annotations, whose answers must match."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets import admission, load
from pillion.kube.admission import review
from tests.fuzz.strategies import FUZZ, mutated

ANNOTATIONS = {
    "pillion.dev/inject": st.sampled_from(["true", "false", "yes"]),
    "pillion.dev/capture": st.sampled_from(["none", "inbound", "all", "some"]),
    "pillion.dev/logs": st.sampled_from(["/var/log/app/*.log", "relative.log", "/"]),
    "pillion.dev/secret-db": st.sampled_from(["database/creds/web", "kv/app", "nomount", ""]),
    "pillion.dev/app-port": st.sampled_from(["8080", "0", "99999", "http"]),
    "pillion.dev/native-sidecar": st.sampled_from(["true", "false"]),
    "prometheus.io/scrape": st.sampled_from(["true", "false"]),
}
pod_annotations = st.fixed_dictionaries({}, optional=ANNOTATIONS)
containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["web", "worker", "pillion"]), "image": st.just("shop/web:1")}
    ),
    max_size=3,
)


def body(pod: dict[str, Any], operation: str) -> bytes:
    request = {
        "uid": "e911857d-c318-11e8-bbad-025000000001",
        "operation": operation,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": "shop",
        "object": pod,
    }
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


@FUZZ
@given(mutated(load("admission")))
def test_mutated_reviews(data: bytes) -> None:
    admission.check(data)


@FUZZ
@given(pod_annotations, containers, st.sampled_from(["CREATE", "CREATE", "UPDATE"]))
def test_reviews_of_pods_answer_for_their_pod(
    wanted: dict[str, str], apps: list[dict[str, str]], operation: str
) -> None:
    pod = {"metadata": {"name": "web-1", "annotations": wanted}, "spec": {"containers": apps}}
    data = body(pod, operation)
    admission.check(data)
    reviewed = review(data, admission.SETTINGS)
    response = reviewed.answer["response"]
    assert response["uid"] == "e911857d-c318-11e8-bbad-025000000001"
    assert response["allowed"] is True
    if operation == "UPDATE" or wanted.get("pillion.dev/inject") in ("false", "yes"):
        assert reviewed.result == "skipped"
    elif not wanted and all(app["name"] != "pillion" for app in apps):
        assert reviewed.result == "injected"  # the namespace is enabled
