"""``pillion inject``: every example's output validates against each Kubernetes
version from 1.29 up (native sidecars need 1.29), and bad input exits 2."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

# Imported by name: the library ships no type information.
kubernetes_validate: Any = importlib.import_module("kubernetes_validate")
kv_utils: Any = importlib.import_module("kubernetes_validate.utils")

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "kube").glob("*.yaml"))


def versions() -> list[str]:
    found = sorted({v for v in kv_utils.all_versions()
                    if tuple(map(int, v.split(".")[:2])) >= (1, 29)},
                   key=lambda v: tuple(map(int, v.split("."))))  # fmt: skip
    assert found
    return found


def pillion_inject(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pillion", "inject", *args],
        capture_output=True, text=True, timeout=60, input=stdin, check=False,
    )  # fmt: skip


def pods(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document["kind"] == "List":
        return [pod for item in document["items"] for pod in pods(item)]
    spec = document.get("spec", {})
    if document["kind"] == "Pod":
        return [document]
    if document["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]]
    return [spec["template"]] if "template" in spec else []


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("mode", ["--native", "--classic"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_output_validates(example: Path, mode: str) -> None:
    result = pillion_inject("-f", str(example), mode)
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert documents
    injected = [p for doc in documents for p in pods(doc)
                if "pillion.dev/generated-config" in p["metadata"]["annotations"]
                or "pillion.dev/config" in p["metadata"]["annotations"]]  # fmt: skip
    assert injected, "at least one pod template is injected"
    objects = [item for doc in documents for item in (doc["items"] if doc["kind"] == "List"
               else [doc])]  # fmt: skip
    for document in objects:  # no schema ships for List: its items are checked
        for version in versions():
            kubernetes_validate.validate(document, version, strict=True)


def test_native_and_classic_placement() -> None:
    example = str(Path(__file__).parents[2] / "examples" / "kube" / "deployment.yaml")
    native = yaml.safe_load(pillion_inject("-f", example).stdout)["spec"]["template"]["spec"]
    assert [c["name"] for c in native["initContainers"]] == [
        "pillion-init", "pillion", "migrate", "warm-cache"]  # fmt: skip
    assert [c["name"] for c in native["containers"]] == ["web", "worker"]
    classic = yaml.safe_load(pillion_inject("-f", example, "--classic").stdout)
    spec = classic["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["pillion-init", "migrate", "warm-cache"]
    assert [c["name"] for c in spec["containers"]] == ["pillion", "web", "worker"]


def test_stdin_and_skip_reason_on_stderr() -> None:
    text = (Path(__file__).parents[2] / "examples" / "kube" / "list.yaml").read_text()
    result = pillion_inject("-f", "-", stdin=text)
    assert result.returncode == 0
    assert "Deployment shop/legacy: not injected: annotation pillion.dev/inject=false" in (
        result.stderr
    )
    service = yaml.safe_load(result.stdout)["items"][0]
    assert service == yaml.safe_load(text)["items"][0]


def test_diff() -> None:
    example = str(Path(__file__).parents[2] / "examples" / "kube" / "pod.yaml")
    result = pillion_inject("-f", example, "--diff")
    assert result.returncode == 0
    assert result.stdout.startswith(f"--- {example}\n+++ {example} (injected)\n")
    assert "+  - name: pillion\n" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: [1, 2\n", "invalid YAML"),
        ("- 1\n- 2\n", "document 1 is a list"),
        ("just text\n", "document 1 is a str"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = pillion_inject("-f", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = pillion_inject("-f", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_a_revision_injects_its_pods_and_leaves_the_others(tmp_path: Path) -> None:
    manifest = tmp_path / "pods.yaml"
    labelled: tuple[tuple[str, dict[str, str]], ...] = (
        ("canary", {"pillion.dev/rev": "canary"}),
        ("plain", {}),
    )
    pods = [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": name, "namespace": "shop", "labels": labels},
             "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
            for name, labels in labelled]  # fmt: skip
    manifest.write_text(yaml.safe_dump_all(pods))
    default = pillion_inject("-f", str(manifest))
    assert "Pod shop/canary: not injected: pillion.dev/rev=canary: revision canary" in (
        default.stderr
    )
    canary = pillion_inject("-f", str(manifest), "--revision", "canary")
    assert canary.returncode == 0, canary.stderr
    injected = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(canary.stdout)}
    annotations = injected["canary"]["metadata"]["annotations"]
    assert json.loads(annotations["pillion.dev/status"])["revision"] == "canary"
    assert annotations["pillion.dev/version"] == "0.1.0"


def test_a_workload_kind_pillion_does_not_know_is_passed_through_and_said_so(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "dc.yaml"
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "w"}]},
    }
    config = {"apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig",
              "metadata": {"name": "web", "namespace": "shop"},
              "spec": {"template": template}}  # fmt: skip
    manifest.write_text(yaml.safe_dump(config))
    result = pillion_inject("-f", str(manifest))
    assert result.returncode == 0
    assert yaml.safe_load(result.stdout) == config  # unchanged
    assert "DeploymentConfig shop/web: not injected: kind DeploymentConfig is passed" in (
        result.stderr
    )
