"""`pillion install`: every manifest validates against each Kubernetes version from
1.29 up, and the generated certificate chain is the one the webhook config trusts."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils

CERT_MANAGER_KINDS = {"Issuer", "Certificate"}  # CRDs: no schema ships for them


def versions() -> list[str]:
    found = sorted({v for v in kv_utils.all_versions()
                    if tuple(map(int, v.split(".")[:2])) >= (1, 29)},
                   key=lambda v: tuple(map(int, v.split("."))))  # fmt: skip
    assert found, "kubernetes-validate ships schemas from 1.29 up"
    return found


def install(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "install", *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize(
    "args",
    [(), ("--cert-manager", "--failure-policy", "Fail"), ("--revision", "canary")],
)
def test_every_manifest_validates_on_every_version(args: tuple[str, ...]) -> None:
    documents = install(*args)
    kinds = [doc["kind"] for doc in documents]
    for kind in ("Namespace", "ServiceAccount", "Deployment", "PodDisruptionBudget", "Service",
                 "MutatingWebhookConfiguration"):  # fmt: skip
        assert kind in kinds
    for version in versions():
        for document in documents:
            if document["kind"] in CERT_MANAGER_KINDS:
                continue
            kubernetes_validate.validate(document, version, strict=True)


def test_the_webhook_configuration() -> None:
    documents = {doc["kind"]: doc for doc in install()}
    [hook] = documents["MutatingWebhookConfiguration"]["webhooks"]
    assert hook["sideEffects"] == "None"
    assert hook["timeoutSeconds"] == 5
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["failurePolicy"] == "Ignore"
    assert hook["namespaceSelector"] == {
        "matchLabels": {"pillion.dev/inject": "enabled"},
        "matchExpressions": [{"key": "pillion.dev/rev", "operator": "DoesNotExist"}],
    }
    assert hook["admissionReviewVersions"] == ["v1"]
    deployment = documents["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    security = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert documents["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_the_ca_bundle_signs_the_serving_certificate(tmp_path: Path) -> None:
    documents = {doc["kind"]: doc for doc in install()}
    secret = documents["Secret"]["data"]
    bundle = documents["MutatingWebhookConfiguration"]["webhooks"][0]["clientConfig"]["caBundle"]
    (tmp_path / "ca.pem").write_bytes(base64.b64decode(bundle))
    (tmp_path / "tls.crt").write_bytes(base64.b64decode(secret["tls.crt"]))
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), "-verify_hostname",
         "pillion-webhook.pillion-system.svc", str(tmp_path / "tls.crt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with_cm = {doc["kind"]: doc for doc in install("--cert-manager")}
    annotations = with_cm["MutatingWebhookConfiguration"]["metadata"]["annotations"]
    assert annotations == {"cert-manager.io/inject-ca-from": "pillion-system/pillion-webhook"}
    assert "Secret" not in with_cm


def test_wait_started_holds_until_the_sidecar_has_started(tmp_path: Path) -> None:
    """Classic mode's postStart hold: exit 0 once /healthz/started passes, 1 at its
    timeout when nothing answers."""
    from tests.helpers import free_port, running_pillion

    nobody = subprocess.run(
        [sys.executable, "-m", "pillion", "wait-started", "--status",
         f"127.0.0.1:{free_port()}", "--timeout", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert nobody.returncode == 1
    assert "did not pass" in nobody.stderr
    with running_pillion(tmp_path, "") as pillion:
        waited = subprocess.run(
            [sys.executable, "-m", "pillion", "wait-started", "--status",
             f"127.0.0.1:{pillion.status_port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert waited.returncode == 0, waited.stderr


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        held = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not held:
            return False
    return True


def hooks(documents: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    configurations = [d for d in documents if d["kind"] == "MutatingWebhookConfiguration"]
    return [(d["metadata"]["name"], hook) for d in configurations for hook in d["webhooks"]]


def test_two_revisions_and_a_tag_applied_together_never_collide(tmp_path: Path) -> None:
    default, canary = install(), install("--revision", "canary")
    ca = tmp_path / "ca.crt"  # the canary revision's CA, as its Secret holds it
    ca.write_bytes(base64.b64decode(
        next(d for d in canary if d["kind"] == "Secret")["data"]["ca.crt"]))  # fmt: skip
    stable = install("--tag", "stable", "--revision", "canary", "--ca-file", str(ca))
    assert [d["kind"] for d in stable] == ["MutatingWebhookConfiguration"]
    everything = default + canary + stable
    # every object has its own name, but the namespace they share
    named = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
             for d in everything if d["kind"] != "Namespace"]  # fmt: skip
    assert len(named) == len(set(named)), sorted(named)
    webhook_names = [hook["name"] for _, hook in hooks(everything)]
    assert len(webhook_names) == len(set(webhook_names))
    # the canary's Deployment and Service select its own pods only
    [default_service] = [d for d in default if d["kind"] == "Service"]
    [canary_deployment] = [d for d in canary if d["kind"] == "Deployment"]
    pod_labels = canary_deployment["spec"]["template"]["metadata"]["labels"]
    assert not matches({"matchLabels": default_service["spec"]["selector"]}, pod_labels)
    # the tag sends its pods to the canary's Service, trusting the canary's CA
    [(_, tag_hook), *_] = hooks(stable)
    client = tag_hook["clientConfig"]
    assert client["service"]["name"] == "pillion-webhook-canary"
    assert client["service"]["path"] == "/inject/tag/stable"
    assert base64.b64decode(client["caBundle"]) == ca.read_bytes()
    # whatever the labels, at most one injector gets a pod, and the one it should
    on, rev = {"pillion.dev/inject": "enabled"}, "pillion.dev/rev"
    cases = [
        ({}, {}, None),
        (on, {}, "pillion-injector"),
        ({**on, rev: "canary"}, {}, "pillion-injector-canary"),  # both labels: the revision
        ({rev: "canary"}, {}, "pillion-injector-canary"),
        ({rev: "stable"}, {}, "pillion-injector-tag-stable"),
        (on, {rev: "canary"}, "pillion-injector-canary"),
        ({rev: "canary"}, {rev: "stable"}, "pillion-injector-tag-stable"),  # the pod's wins
        (on, {rev: "gone"}, None),  # a revision no longer installed
        (on, {"app.kubernetes.io/part-of": "pillion"}, None),
    ]
    for namespace_labels, pod_labels, expected in cases:
        namespace_labels = {"kubernetes.io/metadata.name": "shop", **namespace_labels}
        taken = [name for name, hook in hooks(everything)
                 if matches(hook["namespaceSelector"], namespace_labels)
                 and matches(hook["objectSelector"], pod_labels)]  # fmt: skip
        assert taken == ([] if expected is None else [expected]), (namespace_labels, pod_labels)


def test_a_revision_injector_is_told_its_revision_and_runs_the_pinned_image() -> None:
    [deployment] = [d for d in install("--revision", "canary") if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/pillion/pillion:0.1.0"
    args = container["args"]
    assert args[args.index("--revision") + 1] == "canary"
    assert args[args.index("--image") + 1] == "ghcr.io/pillion/pillion:0.1.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tag", "stable"), "--tag needs the revision's CA"),
        (("--revision", "Canary!"), "a revision is lower-case letters"),
        (("--tag", "canary", "--revision", "canary", "--cert-manager"), "a tag is another name"),
    ],
)
def test_bad_revisions_and_tags_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pillion", "install", *args],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("args", [(), ("--cert-manager",)])
def test_every_object_of_a_revision_carries_its_label_to_remove_it_by(
    args: tuple[str, ...],
) -> None:
    for revision in ("default", "canary"):
        documents = install(*args, "--revision", revision)
        for document in documents:
            if document["kind"] == "Namespace":  # shared by every revision
                continue
            labels = document["metadata"].get("labels", {})
            assert labels.get("pillion.dev/revision") == revision, document["kind"]
