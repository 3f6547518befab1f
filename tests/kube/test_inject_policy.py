"""The injector's policy: who is injected, who is not and why, and idempotence."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pillion.kube.inject import Decision, InjectSettings, inject_pod

SETTINGS = InjectSettings()
ENABLED = {"pillion.dev/inject": "enabled"}


def pod(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "annotations": dict(annotations or {})},
        "spec": {"containers": [{"name": "app", "image": "app:1"}], **spec},
    }


def status(decision: Decision) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        decision.pod["metadata"]["annotations"]["pillion.dev/status"]
    )
    return loaded


def names(decision: Decision, key: str) -> list[str]:
    return [c["name"] for c in decision.pod["spec"].get(key, [])]


def test_namespace_label_enables() -> None:
    decision = inject_pod(pod(), SETTINGS, "shop", ENABLED)
    assert decision.injected
    assert decision.reason == "injected"
    assert status(decision) == {
        "injected": True,
        "reason": "injected",
        "version": "0.1.0",
        "revision": "default",
    }
    # the sidecar is the injector's own version, never :latest
    assert sidecar(decision)["image"] == "ghcr.io/pillion/pillion:0.1.0"
    assert decision.pod["metadata"]["annotations"]["pillion.dev/version"] == "0.1.0"


def test_namespace_not_enabled() -> None:
    decision = inject_pod(pod(), SETTINGS, "shop")
    assert not decision.injected
    assert decision.reason == "namespace not enabled"
    assert status(decision)["injected"] is False
    assert names(decision, "containers") == ["app"]


def test_default_inject_setting() -> None:
    assert inject_pod(pod(), InjectSettings(default_inject=True), "shop").injected


def test_namespace_label_disabled() -> None:
    decision = inject_pod(pod(), InjectSettings(default_inject=True), "shop",
                          {"pillion.dev/inject": "disabled"})  # fmt: skip
    assert decision.reason == "namespace label pillion.dev/inject=disabled"


@pytest.mark.parametrize(("value", "injected"), [("true", True), ("True", True), ("false", False)])
def test_pod_annotation_wins(value: str, injected: bool) -> None:
    labels = {} if injected else ENABLED
    decision = inject_pod(pod({"pillion.dev/inject": value}), SETTINGS, "shop", labels)
    assert decision.injected is injected
    if not injected:
        assert decision.reason == "annotation pillion.dev/inject=false"


def test_vault_agent_inject_counts() -> None:
    decision = inject_pod(pod({"vault.hashicorp.com/agent-inject": "true"}), SETTINGS, "shop")
    assert decision.injected


def test_bad_inject_value() -> None:
    decision = inject_pod(pod({"pillion.dev/inject": "yes"}), SETTINGS, "shop")
    assert not decision.injected
    assert decision.reason.startswith("invalid annotation pillion.dev/inject:")


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "pillion-system"])
def test_protected_namespaces(namespace: str) -> None:
    decision = inject_pod(pod({"pillion.dev/inject": "true"}), SETTINGS, namespace, ENABLED)
    assert not decision.injected
    assert decision.reason == f"namespace {namespace}"


def test_injector_namespace_is_the_settings_one() -> None:
    settings = InjectSettings(injector_namespace="mesh")
    assert inject_pod(pod(), settings, "pillion-system", ENABLED).injected
    assert inject_pod(pod(), settings, "mesh", ENABLED).reason == "namespace mesh"


def test_host_network_skipped_unless_forced() -> None:
    decision = inject_pod(pod(hostNetwork=True), SETTINGS, "shop", ENABLED)
    assert (decision.injected, decision.reason) == (False, "hostNetwork")
    forced = InjectSettings(force_host_network=True)
    assert inject_pod(pod(hostNetwork=True), forced, "shop", ENABLED).injected


def test_idempotent() -> None:
    first = inject_pod(pod({"pillion.dev/logs": "/var/log/a/*.log"}), SETTINGS, "shop", ENABLED)
    second = inject_pod(first.pod, SETTINGS, "shop", ENABLED)
    assert (second.injected, second.reason) == (False, "already injected")
    assert second.pod == first.pod


def test_skipped_pod_is_stable() -> None:
    first = inject_pod(pod(), SETTINGS, "shop")
    second = inject_pod(first.pod, SETTINGS, "shop")
    assert second.pod == first.pod


def test_a_skip_recorded_earlier_does_not_block_injection() -> None:
    skipped = inject_pod(pod(), SETTINGS, "shop")
    assert inject_pod(skipped.pod, SETTINGS, "shop", ENABLED).injected


def test_input_never_mutated() -> None:
    original = pod({"pillion.dev/secret-db": "secret/db", "pillion.dev/logs": "/var/log/a/x.log",
                    "prometheus.io/scrape": "true", "pillion.dev/capture": "all"},
                   initContainers=[{"name": "migrate", "image": "app:1"}],
                   volumes=[{"name": "data", "emptyDir": {}}])  # fmt: skip
    snapshot = copy.deepcopy(original)
    assert inject_pod(original, SETTINGS, "shop", ENABLED).injected
    assert original == snapshot


def test_pod_without_metadata_or_annotations() -> None:
    decision = inject_pod({"spec": {"containers": [{"name": "a", "image": "a"}]}},
                          SETTINGS, "shop", ENABLED)  # fmt: skip
    assert decision.injected


@pytest.mark.parametrize(
    ("extra", "annotations", "clash"),
    [
        ({"containers": [{"name": "pillion", "image": "x"}]}, {}, "container named pillion"),
        ({"initContainers": [{"name": "pillion-init", "image": "x"}]},
         {"pillion.dev/capture": "inbound"}, "container named pillion-init"),
        ({"volumes": [{"name": "pillion-secrets", "emptyDir": {}}]},
         {"pillion.dev/secret-db": "secret/db"}, "volume named pillion-secrets"),
        ({"volumes": [{"name": "pillion-logs", "emptyDir": {}}]},
         {"pillion.dev/logs": "/var/log/a/*.log"}, "volume named pillion-logs"),
        ({"volumes": [{"name": "pillion-podinfo", "emptyDir": {}}]}, {},
         "volume named pillion-podinfo"),
        ({"volumes": [{"name": "pillion-config", "emptyDir": {}}]},
         {"pillion.dev/config": "cm"}, "volume named pillion-config"),
    ],
)  # fmt: skip
def test_name_clashes(extra: dict[str, Any], annotations: dict[str, str], clash: str) -> None:
    base = pod(annotations)
    base["spec"].update(extra)
    if "containers" in extra:
        base["spec"]["containers"].append({"name": "app", "image": "app:1"})
    decision = inject_pod(base, SETTINGS, "shop", ENABLED)
    assert not decision.injected
    assert clash in decision.reason
    assert decision.reason.startswith("name clash")


def test_mount_path_clash() -> None:
    base = pod({"pillion.dev/secret-db": "secret/db"})
    base["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/secrets"}]
    base["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    decision = inject_pod(base, SETTINGS, "shop", ENABLED)
    assert decision.reason == "mount clash: container app already mounts /secrets"


def test_our_names_only_clash_when_used() -> None:
    base = pod(volumes=[{"name": "pillion-secrets", "emptyDir": {}}])
    assert inject_pod(base, SETTINGS, "shop", ENABLED).injected


def sidecar(decision: Decision) -> dict[str, Any]:
    spec = decision.pod["spec"]
    containers: list[dict[str, Any]] = [*spec.get("initContainers", []), *spec["containers"]]
    found = [c for c in containers if c["name"] == "pillion"]
    assert len(found) == 1
    return found[0]


def test_the_pods_own_volumes_are_mounted_into_pillion_as_asked() -> None:
    volumes = [{"name": "tls", "secret": {"secretName": "shop-tls"}},
               {"name": "shared", "emptyDir": {}}]  # fmt: skip
    mounts = "tls:/var/run/secrets/pillion/tls:ro, shared:/vault/secrets/"
    asked = {"pillion.dev/config": "shop-pillion", "pillion.dev/volume-mounts": mounts}
    decision = inject_pod(pod(asked, volumes=volumes), SETTINGS, "shop", ENABLED)
    assert decision.injected, decision.reason
    mounts = sidecar(decision)["volumeMounts"]
    assert {"name": "tls", "mountPath": "/var/run/secrets/pillion/tls", "readOnly": True} in mounts
    assert {"name": "shared", "mountPath": "/vault/secrets"} in mounts
    assert [v["name"] for v in decision.pod["spec"]["volumes"]][:2] == ["tls", "shared"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("nowhere:/x", "volume-mounts: the pod has no volume named nowhere"),
        ("tls:/etc/pillion/tls", "volume-mounts: Pillion mounts /etc/pillion itself"),
        ("tls:/etc/podinfo", "volume-mounts: Pillion mounts /etc/podinfo itself"),
        ("tls", "invalid annotation pillion.dev/volume-mounts: expected VOLUME:/path"),
        ("tls:relative/path", "invalid annotation pillion.dev/volume-mounts: expected"),
        ("tls:/x:rx", "invalid annotation pillion.dev/volume-mounts: expected"),
        ("tls:/a/../etc", "invalid annotation pillion.dev/volume-mounts: a mount path has no"),
        ("tls:/a,tls:/a/", "invalid annotation pillion.dev/volume-mounts: two mounts at"),
    ],
)
def test_a_volume_mount_that_cannot_be_done_skips_the_pod(value: str, reason: str) -> None:
    asked = {"pillion.dev/config": "shop-pillion", "pillion.dev/volume-mounts": value}
    volumes = [{"name": "tls", "secret": {"secretName": "shop-tls"}}]
    decision = inject_pod(pod(asked, volumes=volumes), SETTINGS, "shop", ENABLED)
    assert not decision.injected
    assert decision.reason.startswith(reason), decision.reason
    assert status(decision)["reason"] == decision.reason


def test_pillion_gets_the_service_account_token_the_api_server_gave_the_app() -> None:
    token = {"name": "kube-api-access-x7k2p", "readOnly": True,
             "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}  # fmt: skip
    base = pod(volumes=[{"name": "kube-api-access-x7k2p", "projected": {"sources": []}}])
    base["spec"]["containers"][0]["volumeMounts"] = [token]
    decision = inject_pod(base, SETTINGS, "shop", ENABLED)  # as the webhook sees a pod
    assert token in sidecar(decision)["volumeMounts"]
    # a manifest injected before it is created has none yet: the API server adds it
    bare = inject_pod(pod(), SETTINGS, "shop", ENABLED)
    assert all("serviceaccount" not in m["mountPath"] for m in sidecar(bare)["volumeMounts"])


def test_a_pods_image_annotation_picks_its_sidecar() -> None:
    asked = {"pillion.dev/image": "registry.example/pillion:0.2.0-rc.1"}
    decision = inject_pod(pod(asked), SETTINGS, "shop", ENABLED)
    assert sidecar(decision)["image"] == "registry.example/pillion:0.2.0-rc.1"
    assert decision.pod["metadata"]["annotations"]["pillion.dev/version"] == "0.2.0-rc.1"
    bad = inject_pod(pod({"pillion.dev/image": "not an image"}), SETTINGS, "shop", ENABLED)
    assert not bad.injected
    assert bad.reason.startswith("invalid annotation pillion.dev/image: expected an image")


def labelled(rev: str) -> dict[str, Any]:
    base = pod()
    base["metadata"]["labels"] = {"app": "web", "pillion.dev/rev": rev}
    return base


def test_each_revision_injects_only_its_own_pods() -> None:
    canary = InjectSettings(revision="canary")
    # the default injector leaves a pod that names a revision to that revision
    decision = inject_pod(labelled("canary"), SETTINGS, "shop", ENABLED)
    assert not decision.injected
    assert decision.reason == "pillion.dev/rev=canary: revision canary injects it, not default"
    # the revision takes it, and says so
    taken = inject_pod(labelled("canary"), canary, "shop", ENABLED)
    assert taken.injected
    assert status(taken)["revision"] == "canary"
    # a pod labelled for another revision is that one's
    assert not inject_pod(labelled("stable"), canary, "shop", ENABLED).injected
    # through a tag: a pod labelled with the tag is the revision's too
    tagged = inject_pod(labelled("stable"), canary, "shop", ENABLED, tag="stable")
    assert tagged.injected
    assert (status(tagged)["revision"], status(tagged)["tag"]) == ("canary", "stable")


def test_a_namespace_with_both_labels_is_the_named_revisions() -> None:
    """A namespace with pillion.dev/inject=enabled and pillion.dev/rev=canary (as
    ``pillion inject`` sees it; the webhook configurations route it the same way):
    the explicit revision wins, and only it injects."""
    both = {"pillion.dev/inject": "enabled", "pillion.dev/rev": "canary"}
    default = inject_pod(pod(), SETTINGS, "shop", both)
    assert not default.injected
    assert default.reason.startswith("pillion.dev/rev=canary: revision canary injects it")
    canary = inject_pod(pod(), InjectSettings(revision="canary"), "shop", both)
    assert canary.injected
    assert status(canary)["revision"] == "canary"
    # the pod's own label wins over its namespace's
    stable = InjectSettings(revision="stable")
    assert inject_pod(labelled("stable"), stable, "shop", both).injected
    assert not inject_pod(
        labelled("stable"), InjectSettings(revision="canary"), "shop", both
    ).injected
