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


@pytest.mark.parametrize("args", [(), ("--cert-manager", "--failure-policy", "Fail")])
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
    assert hook["namespaceSelector"] == {"matchLabels": {"pillion.dev/inject": "enabled"}}
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
