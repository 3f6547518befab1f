"""`pillion webhook` over real HTTPS: AdmissionReview v1 requests built from
real-looking pods; the JSONPatch it answers applies cleanly and the result
validates; malformed reviews get an answer, never a crash or a hang; the
serving certificate is reloaded from its files."""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from pillion.tls.devca import Issued, issue, new_ca
from tests.helpers import free_port, metric_value, wait_until

SERVICE = "pillion-webhook.pillion-system.svc"

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "labels": {"app": "web"},
        "annotations": {"pillion.dev/inject": "true", "pillion.dev/app-port": "8080"},
    },
    "spec": {
        "initContainers": [{"name": "migrate", "image": "shop/migrate:1"}],
        "containers": [
            {"name": "web", "image": "shop/web:1", "ports": [{"containerPort": 8080}]},
            {"name": "worker", "image": "shop/worker:1"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
}


class _ServiceConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1, verified as the Service's name (as the API server calls it)."""

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass
class Webhook:
    port: int
    ca: Path
    cert: Path
    key: Path
    authority: Issued
    process: subprocess.Popen[str]

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def call(self, body: bytes, path: str = "/inject") -> tuple[int, bytes]:
        connection = _ServiceConnection(SERVICE, self.port, context=self.context(), timeout=10)
        try:
            connection.request("POST" if body else "GET", path, body=body or None,
                               headers={"Content-Type": "application/json"})  # fmt: skip
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def review(self, request: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
        document: dict[str, Any] = {"apiVersion": "admission.k8s.io/v1",
                                    "kind": "AdmissionReview", **fields}  # fmt: skip
        if request is not None:
            document["request"] = request
        status, body = self.call(json.dumps(document).encode())
        assert status == 200, body
        return dict(json.loads(body))


def write_pair(directory: Path, pair: Issued) -> None:
    for name, data in (("tls.crt", pair.cert_pem), ("tls.key", pair.key_pem)):
        temporary = directory / f".{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, directory / name)


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    directory = tmp_path_factory.mktemp("webhook")
    authority = new_ca("test injector CA")
    (directory / "ca.pem").write_bytes(authority.cert_pem)
    write_pair(directory, issue(authority, dns_names=(SERVICE,)))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pillion", "webhook", "--listen", f"127.0.0.1:{port}",
         "--cert", str(directory / "tls.crt"), "--key", str(directory / "tls.key")],
        stdout=subprocess.DEVNULL, stderr=(directory / "webhook.log").open("wb"), text=True,
    )  # fmt: skip
    hook = Webhook(port, directory / "ca.pem", directory / "tls.crt", directory / "tls.key",
                   authority, process)  # fmt: skip

    def healthy() -> bool:
        try:
            return hook.call(b"", "/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(healthy, timeout=20)
        yield hook
    finally:
        process.terminate()
        process.wait(timeout=20)


def admission(pod: dict[str, Any], uid: str = "uid-1", kind: str = "Pod") -> dict[str, Any]:
    return {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": pod["metadata"].get("namespace", "default"),
        "operation": "CREATE",
        "object": pod,
    }


def patched(pod: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    response = answer["response"]
    if "patch" not in response:
        return pod
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(pod), patch)
    return result


def test_a_pod_is_injected_and_the_patch_applies_and_validates(webhook: Webhook) -> None:
    answer = webhook.review(admission(POD))
    assert answer["response"]["uid"] == "uid-1"
    assert answer["response"]["allowed"] is True
    pod = patched(POD, answer)
    names = [c["name"] for c in pod["spec"].get("initContainers", [])] + [
        c["name"] for c in pod["spec"]["containers"]
    ]
    assert any("pillion" in name for name in names)
    assert "migrate" in names and "web" in names and "worker" in names  # noqa: PT018
    status = json.loads(pod["metadata"]["annotations"]["pillion.dev/status"])
    assert status["injected"] is True
    for version in ("1.29.0", "1.37.0"):
        kubernetes_validate.validate(pod, version, strict=True)
    # each pod gets its own preStop token, in its app containers' hook and in Pillion's env
    tokens = {
        c["lifecycle"]["preStop"]["httpGet"]["httpHeaders"][0]["value"]
        for c in pod["spec"]["containers"]
        if c["name"] in ("web", "worker")
    }
    other = patched(POD, webhook.review(admission(POD, "uid-3")))
    other_token = other["spec"]["containers"][0]["lifecycle"]["preStop"]["httpGet"]
    assert len(tokens) == 1
    assert other_token["httpHeaders"][0]["value"] not in tokens
    every = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    env = next(c for c in every if c["name"] == "pillion")["env"]
    assert {"name": "PILLION_PRESTOP_TOKEN", "value": tokens.pop().removeprefix("Bearer ")} in env
    # idempotent: the injected pod, reviewed again, is not injected twice
    again = patched(pod, webhook.review(admission(pod, "uid-2")))
    assert [c["name"] for c in again["spec"]["containers"]] == [
        c["name"] for c in pod["spec"]["containers"]
    ]
    assert again["spec"].get("initContainers") == pod["spec"].get("initContainers")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"spec": {"hostNetwork": True}}, "hostNetwork"),
        ({"metadata": {"annotations": {"pillion.dev/inject": "false"}}}, "pillion.dev/inject"),
        ({"metadata": {"annotations": {"pillion.dev/inject": "true",
                                       "pillion.dev/app-port": "70000"}}}, "app-port"),
        ({"metadata": {"annotations": {"pillion.dev/inject": "true",
                                       "pillion.dev/capture": "sideways"}}}, "capture"),
        ({"metadata": {"namespace": "kube-system"}}, "kube-system"),
    ],
)  # fmt: skip
def test_pods_that_are_not_injected_say_why(
    webhook: Webhook, change: dict[str, Any], reason: str
) -> None:
    pod = copy.deepcopy(POD)
    for section, values in change.items():
        for key, value in values.items():
            if isinstance(value, dict):
                pod[section].setdefault(key, {}).update(value)
            else:
                pod[section][key] = value
    answer = webhook.review(admission(pod))
    assert answer["response"]["allowed"] is True
    result = patched(pod, answer)
    status = json.loads(result["metadata"]["annotations"]["pillion.dev/status"])
    assert status["injected"] is False
    assert reason in status["reason"]
    assert [c["name"] for c in result["spec"]["containers"]] == ["web", "worker"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an AdmissionReview"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                     "request": {"uid": "x"}}).encode(), "admission.k8s.io/v1"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
         "no request"),
    ],
)  # fmt: skip
def test_malformed_reviews_get_an_answer(webhook: Webhook, body: bytes, message: str) -> None:
    status, raw = webhook.call(body)
    assert status == 200
    answer = json.loads(raw)
    assert answer["response"]["allowed"] is True  # the default policy: never block a rollout
    assert message in answer["response"]["status"]["message"]


def test_other_kinds_and_oversized_reviews(webhook: Webhook) -> None:
    deployment = {"metadata": {"name": "d", "namespace": "shop"}}
    answer = webhook.review(admission(deployment, kind="Deployment"))
    assert answer["response"] == {"uid": "uid-1", "allowed": True}
    huge = copy.deepcopy(POD)
    huge["metadata"]["annotations"]["padding"] = "x" * (4 * 1024 * 1024)
    document = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": admission(huge)}  # fmt: skip
    status, raw = webhook.call(json.dumps(document).encode())
    assert status == 200
    assert "over" in json.loads(raw)["response"]["status"]["message"]


def served_serial(webhook: Webhook) -> int:
    with (
        socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as raw,
        webhook.context().wrap_socket(raw, server_hostname=SERVICE) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def reload_errors(webhook: Webhook) -> float:
    metrics = webhook.call(b"", "/metrics")[1]
    return metric_value(metrics, 'pillion_webhook_certificate_reloads_total{result="error"}') or 0


def test_the_serving_certificate_is_reloaded(webhook: Webhook) -> None:
    before = served_serial(webhook)
    write_pair(webhook.cert.parent, issue(webhook.authority, dns_names=(SERVICE,)))
    wait_until(lambda: served_serial(webhook) != before)
    failed = reload_errors(webhook)
    (webhook.cert.parent / "tls.crt").write_text("garbage")  # a broken pair: kept serving
    wait_until(lambda: reload_errors(webhook) > failed)
    assert served_serial(webhook) not in (before, 0)
    write_pair(webhook.cert.parent, issue(webhook.authority, dns_names=(SERVICE,)))
    status, body = webhook.call(b"", "/metrics")
    assert status == 200
    assert (metric_value(body, 'pillion_webhook_certificate_reloads_total{result="error"}')
            or 0) >= 1  # fmt: skip
    injected = metric_value(
        body,
        'pillion_injections_total{reason="injected",result="injected",revision="default",'
        'version="0.1.0"}',
    )
    assert injected is not None


def test_a_tag_path_takes_the_pods_labelled_with_the_tag(webhook: Webhook) -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["labels"] = {**pod["metadata"].get("labels", {}), "pillion.dev/rev": "stable"}
    # on the default path, a pod naming a revision is left to that revision
    answer = webhook.review(admission(pod))
    status = json.loads(patched(pod, answer)["metadata"]["annotations"]["pillion.dev/status"])
    assert (status["injected"], status["revision"]) == (False, "default")
    assert status["reason"].startswith("pillion.dev/rev=stable: revision stable injects it")
    # through the tag's path (the tag's webhook configuration sends it there), it is taken
    document = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": admission(pod, uid="uid-tag")}  # fmt: skip
    code, body = webhook.call(json.dumps(document).encode(), "/inject/tag/stable")
    assert code == 200, body
    result = patched(pod, json.loads(body))
    status = json.loads(result["metadata"]["annotations"]["pillion.dev/status"])
    assert (status["injected"], status["revision"], status["tag"]) == (True, "default", "stable")
    assert result["metadata"]["annotations"]["pillion.dev/version"] == "0.1.0"
    assert webhook.call(json.dumps(document).encode(), "/inject/tag/Bad_Tag")[0] == 404
