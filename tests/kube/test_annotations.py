"""Each annotation: its effect on the injected pod, and its malformed values."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from pillion.config import PillionConfig
from pillion.kube.annotations import (
    InvalidAnnotation,
    SecretAnnotation,
    image_version,
    parse_annotations,
)
from pillion.kube.inject import InjectSettings, inject_pod

ENABLED = {"pillion.dev/inject": "enabled"}


def injected(annotations: dict[str, str], **settings: Any) -> dict[str, Any]:
    spec = {"serviceAccountName": "web", "containers": [{"name": "app", "image": "a"}]}
    pod = {"metadata": {"name": "p", "annotations": annotations}, "spec": spec}
    decision = inject_pod(pod, InjectSettings(**settings), "shop", ENABLED)
    assert decision.injected, decision.reason
    return decision.pod


def sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    every = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    found: dict[str, Any] = next(c for c in every if c["name"] == "pillion")
    return found


def config(pod: dict[str, Any]) -> PillionConfig:
    text = pod["metadata"]["annotations"]["pillion.dev/generated-config"]
    generated = PillionConfig.model_validate(yaml.safe_load(text))
    assert generated.version == 1  # the format it is written in: an older sidecar says so
    return generated


@pytest.mark.parametrize(
    ("annotations", "key"),
    [
        ({"pillion.dev/app-port": "abc"}, "pillion.dev/app-port"),
        ({"pillion.dev/app-port": "70000"}, "pillion.dev/app-port"),
        ({"pillion.dev/app-port": "0"}, "pillion.dev/app-port"),
        ({"pillion.dev/capture": "outbound"}, "pillion.dev/capture"),
        ({"pillion.dev/native-sidecar": "maybe"}, "pillion.dev/native-sidecar"),
        ({"pillion.dev/cpu-request": "lots"}, "pillion.dev/cpu-request"),
        ({"pillion.dev/memory-limit": "-1Gi"}, "pillion.dev/memory-limit"),
        ({"pillion.dev/log-level": "trace"}, "pillion.dev/log-level"),
        ({"pillion.dev/logs": "relative/*.log"}, "pillion.dev/logs"),
        ({"pillion.dev/config": "Not_A_Name"}, "pillion.dev/config"),
        ({"pillion.dev/secret-Bad": "secret/x"}, "pillion.dev/secret-Bad"),
        ({"pillion.dev/secret-template-db": "x"}, "pillion.dev/secret-template-db"),
        ({"pillion.dev/exclude-inbound-ports": "80,abc"}, "pillion.dev/exclude-inbound-ports"),
        ({"pillion.dev/exclude-outbound-ports": "0"}, "pillion.dev/exclude-outbound-ports"),
        (
            {"pillion.dev/exclude-outbound-cidrs": "10.0.0.0/33"},
            "pillion.dev/exclude-outbound-cidrs",
        ),
    ],
)
def test_malformed(annotations: dict[str, str], key: str) -> None:
    with pytest.raises(InvalidAnnotation) as caught:
        parse_annotations(annotations)
    assert caught.value.key == key
    pod = {"metadata": {"annotations": annotations}, "spec": {"containers": []}}
    decision = inject_pod(pod, InjectSettings(), "shop", ENABLED)
    assert not decision.injected
    assert decision.reason.startswith(f"invalid annotation {key}: ")


def test_defaults() -> None:
    pod = injected({})
    container = sidecar(pod)
    assert pod["spec"]["initContainers"][0] is container or container["restartPolicy"] == "Always"
    assert container["args"] == ["run", "-c", "/etc/podinfo/pillion.yaml"]
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz/started", "port": 15020}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz/live"
    security = container["securityContext"]
    assert security["runAsUser"] == 1337
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {e["name"] for e in container["env"]} == {
        "POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME", "CONTAINER_NAME"}  # fmt: skip
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "15020"
    assert config(pod).app.port == 8080
    assert all(c["name"] != "pillion-init" for c in pod["spec"]["initContainers"])


def test_classic_mode() -> None:
    pod = injected({"pillion.dev/native-sidecar": "false"})
    assert pod["spec"]["containers"][0]["name"] == "pillion"
    assert pod["spec"]["containers"][0]["lifecycle"]["postStart"]["exec"]["command"] == [
        "pillion", "wait-started"]  # fmt: skip
    assert "initContainers" not in pod["spec"]
    native = injected({"pillion.dev/native-sidecar": "true"}, native_sidecar=False)
    assert native["spec"]["initContainers"][0]["restartPolicy"] == "Always"


def test_config_map() -> None:
    pod = injected({"pillion.dev/config": "web-pillion"})
    assert sidecar(pod)["args"] == ["run", "-c", "/etc/pillion/pillion.yaml"]
    assert {"name": "pillion-config", "configMap": {"name": "web-pillion"}} in pod["spec"][
        "volumes"
    ]
    assert "pillion.dev/generated-config" not in pod["metadata"]["annotations"]


@pytest.mark.parametrize("capture", ["inbound", "all"])
def test_capture(capture: str) -> None:
    init = injected({"pillion.dev/capture": capture})["spec"]["initContainers"][0]
    assert init["name"] == "pillion-init"
    assert init["args"][:3] == ["iptables", "--capture", capture]
    assert init["securityContext"]["capabilities"] == {"add": ["NET_ADMIN", "NET_RAW"],
                                                       "drop": ["ALL"]}  # fmt: skip
    assert init["securityContext"]["runAsUser"] == 0
    assert init["args"][-2:] == ["--exclude-inbound-ports", "15020,15000"]
    excluded = injected({
        "pillion.dev/capture": capture,
        "pillion.dev/exclude-inbound-ports": "9090, 9091",
        "pillion.dev/exclude-outbound-ports": "5432",
        "pillion.dev/exclude-outbound-cidrs": "10.96.0.1/12,169.254.169.254,fd00::1/8",
    })["spec"]["initContainers"][0]["args"]  # fmt: skip
    assert excluded[-6:] == [
        "--exclude-inbound-ports", "15020,15000,9090,9091",
        "--exclude-outbound-ports", "5432",
        "--exclude-outbound-cidrs", "10.96.0.0/12,169.254.169.254/32,fd00::/8",
    ]  # fmt: skip
    proxy = config(injected({"pillion.dev/capture": capture})).proxy
    assert proxy is not None
    assert [(listener.name, str(listener.listen)) for listener in proxy.inbound] == [
        ("inbound", "0.0.0.0:15006"),
        ("inbound-ipv6", "[::]:15006"),
    ]
    outbound = [(listener.name, str(listener.listen)) for listener in proxy.outbound]
    both = [("outbound", "127.0.0.1:15001"), ("outbound-ipv6", "[::1]:15001")]
    assert outbound == (both if capture == "all" else [])
    assert all(listener.original_destination is not None for listener in proxy.outbound)


def test_no_capture_no_proxy() -> None:
    assert config(injected({})).proxy is None


def _secret_files(pod_context: dict[str, Any], app_context: dict[str, Any]) -> tuple[Any, ...]:
    spec = {
        "securityContext": pod_context,
        "containers": [{"name": "app", "image": "a", "securityContext": app_context}],
    }
    annotations = {"pillion.dev/secret-db": "secret/db"}
    pod = {"metadata": {"name": "p", "annotations": annotations}, "spec": spec}
    decision = inject_pod(pod, InjectSettings(), "shop", ENABLED)
    secrets = config(decision.pod).secrets
    assert secrets is not None
    template = secrets.templates[0]
    run_as_group = sidecar(decision.pod)["securityContext"]["runAsGroup"]
    return oct(template.mode), template.group, run_as_group


@pytest.mark.parametrize(
    ("pod_context", "app_context", "expected"),
    [
        # fsGroup: every container has it as a supplementary group
        ({"fsGroup": 2000, "runAsGroup": 3000}, {}, ("0o440", 2000, 1337)),
        # the app's group: Pillion runs as it, so the files are created in it
        ({"runAsGroup": 3000}, {}, ("0o440", 3000, 3000)),
        ({"runAsGroup": 3000}, {"runAsGroup": 4000}, ("0o440", 4000, 4000)),
        # no group known: readable by anyone in the pod (the volume is the pod's only)
        ({}, {}, ("0o444", None, 1337)),
        ({"runAsGroup": 0}, {}, ("0o444", None, 1337)),  # never root's group
    ],
)
def test_secret_files_readable_by_the_app(
    pod_context: dict[str, Any], app_context: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    assert _secret_files(pod_context, app_context) == expected


def test_secrets_and_vault_k8s_spelling() -> None:
    template = '{{ with secret "secret/data/db" }}{{ .Data.data.password }}{{ end }}'
    pod = injected({
        "vault.hashicorp.com/agent-inject-secret-db": "secret/data/db",
        "vault.hashicorp.com/agent-inject-template-db": template,
        "vault.hashicorp.com/role": "billing",
        "pillion.dev/secret-api": "secret/data/api",
    })  # fmt: skip
    wanted = parse_annotations(pod["metadata"]["annotations"])
    assert wanted.secrets == (SecretAnnotation("api", "secret/data/api"),)
    assert wanted.vault is not None
    assert [(s.name, s.file, s.template) for s in wanted.vault.secrets] == [("db", "db", template)]
    secrets = config(pod).secrets
    assert secrets is not None
    assert secrets.vault is not None
    assert secrets.vault.auth.role == "billing"
    assert [(t.destination, t.syntax) for t in secrets.templates] == [
        ("/secrets/api", "jinja"), ("/secrets/db", "go")]  # fmt: skip
    assert {"name": "pillion-secrets", "emptyDir": {"medium": "Memory"}} in pod["spec"]["volumes"]
    assert {"name": "pillion-secrets", "mountPath": "/secrets", "readOnly": True} in (
        pod["spec"]["containers"][0]["volumeMounts"])  # fmt: skip
    # an app written for vault-k8s finds its files where vault-k8s puts them
    assert {"name": "pillion-secrets", "mountPath": "/vault/secrets", "readOnly": True} in (
        pod["spec"]["containers"][0]["volumeMounts"])  # fmt: skip
    # the pillion.dev spelling's KV v2 API path is the KV secret secret/api; the Go
    # template reads what it names itself
    assert [(s.name, s.type, s.path) for s in secrets.sources] == [("api", "kv", "secret/api")]


def test_pillion_dev_paths_are_kv_secrets() -> None:
    for value in ("secret/web", "secret/data/web"):
        [found] = config(injected({"pillion.dev/secret-web": value})).secrets.sources  # type: ignore[union-attr]
        assert (found.type, found.path) == ("kv", "secret/web")


def test_a_vault_k8s_secret_name_may_be_a_file_name_with_dots() -> None:
    pod = injected(
        {"vault.hashicorp.com/agent-inject-secret-database-config.txt": "secret/data/db"}
    )
    secrets = config(pod).secrets
    assert secrets is not None
    assert [t.destination for t in secrets.templates] == ["/secrets/database-config.txt"]


def test_vault_role_defaults_to_service_account() -> None:
    secrets = config(injected({"pillion.dev/secret-db": "secret/db"})).secrets
    assert secrets is not None
    assert secrets.vault is not None
    assert secrets.vault.auth.role == "web"


def test_logs() -> None:
    pod = injected({"pillion.dev/logs": "/var/log/app/**/*.log"})
    app_mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "pillion-logs", "mountPath": "/var/log/app"} in app_mounts
    assert any(m["name"] == "pillion-logs" for m in sidecar(pod)["volumeMounts"])
    logs = config(pod).logs
    assert logs is not None
    assert logs.inputs[0].paths == ["/var/log/app/**/*.log"]


def test_resources_and_log_level() -> None:
    pod = injected({"pillion.dev/cpu-request": "50m", "pillion.dev/memory-request": "32Mi",
                    "pillion.dev/cpu-limit": "1", "pillion.dev/memory-limit": "1Gi",
                    "pillion.dev/log-level": "debug", "pillion.dev/app-port": "9000"})  # fmt: skip
    assert sidecar(pod)["resources"] == {"requests": {"cpu": "50m", "memory": "32Mi"},
                                         "limits": {"cpu": "1", "memory": "1Gi"}}  # fmt: skip
    assert config(pod).telemetry.log_level == "debug"
    assert config(pod).app.port == 9000


def test_prometheus_originals_kept_and_merged() -> None:
    pod = injected({"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                    "prometheus.io/path": "/stats"})  # fmt: skip
    annotations = pod["metadata"]["annotations"]
    assert annotations["pillion.dev/original-prometheus-port"] == "9090"
    assert annotations["pillion.dev/original-prometheus-path"] == "/stats"
    assert annotations["prometheus.io/path"] == "/metrics"
    exporters = config(pod).exporters
    assert exporters is not None
    assert exporters.merge_app is not None
    assert exporters.merge_app.url == "http://127.0.0.1:9090/stats"


def _pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers), **spec}}


def test_prestop_hook_with_a_token() -> None:
    own = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    pod = _pod({"name": "app", "image": "a"}, {"name": "worker", "image": "w", "lifecycle": own})
    decision = inject_pod(pod, InjectSettings(), "shop", ENABLED, "tok")
    app, worker = decision.pod["spec"]["containers"]
    assert app["lifecycle"]["preStop"] == {
        "httpGet": {
            "path": "/prestop",
            "port": 15020,
            "httpHeaders": [{"name": "Authorization", "value": "Bearer tok"}],
        }
    }
    assert worker["lifecycle"] == own  # an app's own hook is kept
    assert {"name": "PILLION_PRESTOP_TOKEN", "value": "tok"} in sidecar(decision.pod)["env"]
    without = inject_pod(pod, InjectSettings(), "shop", ENABLED).pod
    assert "lifecycle" not in without["spec"]["containers"][0]
    assert not [e for e in sidecar(without)["env"] if e["name"] == "PILLION_PRESTOP_TOKEN"]


@pytest.mark.parametrize("native", [True, False])
def test_exit_file_in_classic_mode(native: bool) -> None:
    pod = injected({"pillion.dev/native-sidecar": str(native).lower()})
    exit_file = {"name": "PILLION_EXIT_FILE", "value": "/var/run/pillion/exit"}
    mount = {"name": "pillion-lifecycle", "mountPath": "/var/run/pillion"}
    app = pod["spec"]["containers"][-1]
    volumes = [v["name"] for v in pod["spec"]["volumes"]]
    if native:
        assert "pillion-lifecycle" not in volumes
        assert exit_file not in sidecar(pod)["env"]
        assert "env" not in app
    else:
        assert {"name": "pillion-lifecycle", "emptyDir": {"medium": "Memory"}} in (
            pod["spec"]["volumes"])  # fmt: skip
        assert exit_file in sidecar(pod)["env"]
        assert exit_file in app["env"]
        assert mount in app["volumeMounts"]
        assert mount in sidecar(pod)["volumeMounts"]


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (
            _pod({"name": "app", "image": "a"}, volumes=[{"name": "pillion-lifecycle"}]),
            "name clash: the pod already has a volume named pillion-lifecycle",
        ),
        (
            _pod(
                {
                    "name": "app",
                    "image": "a",
                    "volumeMounts": [{"name": "x", "mountPath": "/var/run/pillion"}],
                }
            ),
            "mount clash: container app already mounts /var/run/pillion",
        ),
    ],
)
def test_classic_mode_clashes(pod: dict[str, Any], reason: str) -> None:
    decision = inject_pod(pod, InjectSettings(native_sidecar=False), "shop", ENABLED)
    assert (decision.injected, decision.reason) == (False, reason)
    assert inject_pod(pod, InjectSettings(), "shop", ENABLED).injected  # native: no clash


def test_the_annotations_reference_is_current_and_complete() -> None:
    from pathlib import Path

    from pillion.kube import annotations as module
    from pillion.kube.annotations import ANNOTATIONS, markdown_reference

    committed = Path(__file__).parents[2] / "docs" / "annotations.md"
    assert committed.read_text() == markdown_reference(), "run make docs"
    # every pillion.dev/ key the parser reads is documented (<name> for the secret pairs)
    source = Path(module.__file__).read_text().split("class AnnotationDoc")[0]
    read = set(re.findall(r'(?<!VAULT_)PREFIX \+ "([a-z-]+)"', source))
    read |= set(re.findall(r'\(annotations, "([a-z-]+)"', source))
    vault = set(re.findall(r'VAULT_PREFIX \+ "([a-z-]+)"', source))
    assert read == {doc.name.replace("<name>", "") for doc in ANNOTATIONS}
    assert vault == {doc.vault.replace("<name>", "") for doc in ANNOTATIONS if doc.vault}
    assert len(read) >= 15  # the scan found the parser's keys


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("ghcr.io/pillion/pillion:0.2.0", "0.2.0"),
        ("localhost:5000/pillion:0.3.0-rc.1", "0.3.0-rc.1"),
        ("localhost:5000/pillion", "unknown"),
        ("ghcr.io/pillion/pillion:0.2.0@sha256:" + "a" * 64, "0.2.0"),
        ("ghcr.io/pillion/pillion@sha256:" + "a" * 64, "unknown"),
        ("pillion:", "unknown"),
    ],
)
def test_the_version_an_image_names_is_its_tag(image: str, version: str) -> None:
    assert image_version(image) == version


@pytest.mark.parametrize(
    ("ports", "annotations", "expected"),
    [
        ([{"containerPort": 9080}], {}, 9080),  # bookinfo's
        ([{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 8000}], {}, 8000),
        ([{"containerPort": 9080}], {"pillion.dev/app-port": "9443"}, 9443),  # chosen
        ([], {}, 8080),  # nothing declared: the injector's default
    ],
)
def test_the_app_port_is_the_one_the_app_container_declares(
    ports: list[dict[str, Any]], annotations: dict[str, str], expected: int
) -> None:
    other = {"name": "other", "image": "b", "ports": [{"containerPort": 7000}]}
    spec = {"containers": [{"name": "app", "image": "a", "ports": ports}, other]}
    pod = {"metadata": {"name": "p", "annotations": annotations}, "spec": spec}
    decision = inject_pod(pod, InjectSettings(), "shop", ENABLED)
    assert config(decision.pod).app.port == expected
