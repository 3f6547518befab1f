"""``examples/kube/<job>.yaml`` runs ``examples/<job>.yaml`` in a pod: its header
makes the ConfigMap from that file, the injector injects every pod that asks, and
Pillion's container mounts every file and directory the config reads.

(No Kubernetes API server runs here: ``pillion inject`` is what the webhook does to
the pod, and ``tests/kube/test_inject_cli.py`` checks every manifest it writes
against the API's schemas.)"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from pillion.kube.annotations import log_directory
from tests.examples.running import EXAMPLES
from tests.examples.test_full import POD_ENV

JOBS = sorted(p.stem for p in (EXAMPLES / "kube").glob("*.yaml") if (EXAMPLES / p.name).exists())

# Keys whose values are files or directories Pillion reads or writes.
PATH_KEYS = {"cert", "key", "client_ca", "ca", "jwks_file", "file", "path", "paths",
             "destination", "template_file", "token_file", "role_id_file", "secret_id_file",
             "checkpoints", "labels_file", "annotations_file", "pid_file",
             "client_secret_file", "secret_files"}  # fmt: skip
# What a pod has without asking: the service-account token (the API server mounts
# it) and the pod's labels and annotations (the injector mounts them).
GIVEN = ("/var/run/secrets/kubernetes.io/serviceaccount", "/etc/podinfo")


def test_every_job_with_a_config_has_a_manifest() -> None:
    jobs = {p.stem for p in EXAMPLES.glob("*.yaml")} - {"full", "minimal"}
    assert jobs <= set(JOBS), f"no examples/kube manifest for {sorted(jobs - set(JOBS))}"


def injected(job: str) -> tuple[list[dict[str, Any]], str]:
    result = subprocess.run(
        [sys.executable, "-m", "pillion", "inject", "-f", str(EXAMPLES / "kube" / f"{job}.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d], result.stderr


def config_paths(job: str) -> set[str]:
    """Every path ``examples/<job>.yaml`` names (a glob's fixed directory)."""
    text = (EXAMPLES / f"{job}.yaml").read_text()
    for name, value in POD_ENV.items():
        text = text.replace("${" + name + "}", value)
    found: set[str] = set()

    def walk(value: object, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif key in PATH_KEYS and isinstance(value, str) and value.startswith("/"):
            found.add(log_directory(value) if "*" in value else value)

    walk(yaml.safe_load(text))
    return found


@pytest.mark.parametrize("job", JOBS)
def test_the_manifest_runs_its_example_and_mounts_what_it_reads(job: str) -> None:
    header = (EXAMPLES / "kube" / f"{job}.yaml").read_text()
    made = re.search(
        rf"kubectl -n (\S+) create configmap (\S+) --from-file=pillion.yaml=examples/{job}.yaml",
        header,
    )
    assert made, f"examples/kube/{job}.yaml does not say how its ConfigMap is made"
    namespace, config_map = made.groups()
    documents, stderr = injected(job)
    assert "not injected" not in stderr, stderr
    pods = [d["spec"]["template"] for d in documents if d["kind"] == "Deployment"]
    assert pods
    for pod in pods:
        assert pod["metadata"]["annotations"]["pillion.dev/config"] == config_map
        spec = pod["spec"]
        [sidecar] = [c for c in spec["initContainers"] if c["name"] == "pillion"]
        mounted = [m["mountPath"] for m in sidecar["volumeMounts"]]
        for path in config_paths(job):
            assert any(path == m or path.startswith(m + "/") for m in [*mounted, *GIVEN]), (
                f"examples/{job}.yaml reads {path}, which Pillion's container does not mount"
            )
    assert {d["metadata"]["namespace"] for d in documents} == {namespace}
