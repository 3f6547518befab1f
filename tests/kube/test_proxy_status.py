"""``pillion proxy-status``: pods as kubectl prints them (made by the real injector,
with its ``pillion.dev/status`` and ``pillion.dev/version`` annotations) in; each
pod's sidecar, version, revision and the injector's reason out, per namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pillion import __version__
from pillion.kube.inject import InjectSettings, inject_pod
from pillion.kube.proxystatus import (
    NamespaceSummary,
    NotAPodList,
    PodRow,
    load_pods,
    parse_version,
    pod_rows,
    render_json,
    render_table,
    summarise,
)

ENABLED = {"pillion.dev/inject": "enabled"}
STATUS = "pillion.dev/status"
VERSION = "pillion.dev/version"
IMAGE = "ghcr.io/pillion/pillion"
KEEP = object()  # the annotation as the injector wrote it


def app_pod(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name},
                     "annotations": dict(annotations or {})},
        "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/app:1.4",
                                 "ports": [{"containerPort": 8080}]}]},
    }  # fmt: skip


def as_listed(pod: dict[str, Any], namespace: str) -> dict[str, Any]:
    """What ``kubectl get pods -A -o json`` adds to a created pod."""
    pod["metadata"].update(
        namespace=namespace,
        uid=f"uid-{pod['metadata']['name']}",
        resourceVersion="4711",
        creationTimestamp="2025-05-01T10:00:00Z",
    )
    spec = pod["spec"]
    spec.update(nodeName="node-1", restartPolicy="Always", serviceAccountName="default")
    pod["status"] = {
        "phase": "Running",
        "podIP": "10.244.1.7",
        "containerStatuses": [
            {"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0}
            for c in spec["containers"]
        ],
    }
    return pod


def injected(
    name: str,
    namespace: str,
    *,
    image: str = f"{IMAGE}:0.2.0",
    native: bool = True,
    annotations: dict[str, str] | None = None,
    revision: str = "default",
    old_status: bool = False,
    version: object = KEEP,
) -> dict[str, Any]:
    """A pod through the real injector of ``revision``. ``old_status``: its status
    without ``revision``, as older injectors wrote it; ``version``: the
    ``pillion.dev/version`` the injector wrote (KEEP), none (None: older pods), or
    another."""
    settings = InjectSettings(image=image, native_sidecar=native, revision=revision)
    decision = inject_pod(app_pod(name, annotations), settings, namespace, ENABLED)
    pod = decision.pod
    notes = pod["metadata"]["annotations"]
    status = json.loads(notes[STATUS])
    assert (status["injected"], status["revision"]) == (decision.injected, revision)
    if old_status:
        del status["revision"]
        notes[STATUS] = json.dumps(status)
    if not decision.injected:
        assert VERSION not in notes
    elif version is KEEP:
        assert notes[VERSION] == image.rpartition(":")[2]
    elif version is None:
        del notes[VERSION]
    else:
        notes[VERSION] = str(version)
    return as_listed(pod, namespace)


def pod_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items),
            "metadata": {"resourceVersion": ""}}  # fmt: skip


def cluster() -> dict[str, Any]:
    return pod_list(
        injected("api", "batch", image=f"{IMAGE}:latest", version=None),
        injected("report", "batch", image=f"{IMAGE}@sha256:" + "ab" * 32, version=None),
        injected("coredns", "kube-system"),
        injected("web", "shop"),
        injected("cart", "shop", image=f"{IMAGE}:0.1.0", native=False, old_status=True,
                 version=None),
        injected("web-canary", "shop", image=f"{IMAGE}:0.3.0", revision="canary"),
        injected("legacy", "shop", annotations={"pillion.dev/inject": "false"}),
        as_listed(app_pod("stray"), "shop"),
    )  # fmt: skip


def rows(document: Any, older_than: str = "0.2.0") -> dict[str, PodRow]:
    found = pod_rows(load_pods(json.dumps(document)), older_than)
    return {f"{row.namespace}/{row.name}": row for row in found}


# --- the rows ---------------------------------------------------------------------


def test_each_pod_as_the_injector_left_it() -> None:
    found = rows(cluster())
    assert list(found) == ["batch/api", "batch/report", "kube-system/coredns", "shop/cart",
                           "shop/legacy", "shop/stray", "shop/web", "shop/web-canary"]  # fmt: skip
    assert found["shop/web"] == PodRow(
        namespace="shop", name="web", status="injected", reason="injected", sidecar="native",
        sidecar_version="0.2.0", version_source="annotation", version_check="ok",
        revision="default", injector_version=__version__,
    )  # fmt: skip
    # an older pod: no pillion.dev/version, no revision, a classic sidecar
    assert found["shop/cart"] == PodRow(
        namespace="shop", name="cart", status="injected", reason="injected", sidecar="classic",
        sidecar_version="0.1.0", version_source="image", version_check="older",
        revision="default", injector_version=__version__,
    )  # fmt: skip
    canary = found["shop/web-canary"]
    assert (canary.revision, canary.sidecar_version, canary.version_check) == (
        "canary", "0.3.0", "ok")  # fmt: skip
    legacy = found["shop/legacy"]
    assert (legacy.status, legacy.reason, legacy.sidecar, legacy.sidecar_version) == (
        "not injected", "annotation pillion.dev/inject=false", None, None)  # fmt: skip
    assert (legacy.version_check, legacy.revision) == (None, "default")
    assert found["shop/stray"] == PodRow(
        namespace="shop", name="stray", status="not seen", reason=None, sidecar=None,
        sidecar_version=None, version_source=None, version_check=None, revision=None,
        injector_version=None,
    )  # fmt: skip
    system = found["kube-system/coredns"]
    assert (system.status, system.reason) == ("not injected", "namespace kube-system")


def test_a_version_that_cannot_be_compared_is_unknown_never_older() -> None:
    found = rows(cluster(), older_than="9.0.0")
    latest, digest = found["batch/api"], found["batch/report"]
    assert (latest.sidecar_version, latest.version_source, latest.version_check) == (
        "latest", "image", "unknown")  # fmt: skip
    assert (digest.sidecar_version, digest.version_check) == ("unknown", "unknown")
    older = {key for key, row in found.items() if row.version_check == "older"}
    assert older == {"shop/web", "shop/cart", "shop/web-canary"}


def test_the_annotation_wins_over_the_image_and_may_be_unparsable() -> None:
    pod = injected("web", "shop", image=f"{IMAGE}:0.1.0", version="0.4.1")
    assert rows(pod)["shop/web"].sidecar_version == "0.4.1"
    pod = injected("web", "shop", version="0.3.0rc1")
    assert rows(pod)["shop/web"].version_check == "unknown"


def test_older_than_compares_numbers_not_strings() -> None:
    pod = injected("web", "shop", image=f"{IMAGE}:0.10.0")
    assert rows(pod, older_than="0.9.0")["shop/web"].version_check == "ok"
    assert rows(pod, older_than="0.10")["shop/web"].version_check == "ok"
    assert rows(pod, older_than="0.10.1")["shop/web"].version_check == "older"
    with pytest.raises(ValueError, match="not a version"):
        pod_rows([], "latest")


def test_an_unreadable_status_counts_as_not_seen_with_the_problem() -> None:
    pod = as_listed(app_pod("odd", {STATUS: "{not json"}), "shop")
    odd = rows(pod)["shop/odd"]
    assert (odd.status, odd.reason) == ("not seen", "unreadable pillion.dev/status: not JSON")
    pod["metadata"]["annotations"][STATUS] = json.dumps(["injected"])
    assert rows(pod)["shop/odd"].reason == (
        'unreadable pillion.dev/status: no "injected": true or false'
    )


def test_a_pillion_init_container_without_restart_policy_is_no_sidecar() -> None:
    pod = as_listed(app_pod("job"), "batch")
    pod["spec"]["initContainers"] = [{"name": "pillion", "image": f"{IMAGE}:0.2.0"}]
    job = rows(pod)["batch/job"]
    assert (job.sidecar, job.sidecar_version) == (None, None)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("0.2.0", (0, 2)), ("0.2", (0, 2)), ("v1.10.3", (1, 10, 3)), ("2", (2,)),
     ("0.0.0", (0,)), ("latest", None), ("0.3.0rc1", None), ("unknown", None),
     ("1." * 11 + "1", None), ("9" * 19, None), ("", None)],
)  # fmt: skip
def test_parse_version(text: str, parsed: tuple[int, ...] | None) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize(
    ("image", "tag"),
    [(f"{IMAGE}:0.1.0", "0.1.0"), (f"{IMAGE}:latest", "latest"), (IMAGE, "unknown"),
     (f"{IMAGE}@sha256:{'0' * 64}", "unknown"), (f"{IMAGE}:0.2.0@sha256:{'0' * 64}", "0.2.0"),
     ("registry.local:5000/pillion", "unknown"), ("registry.local:5000/pillion:1.2", "1.2")],
)  # fmt: skip
def test_without_the_annotation_the_image_tag_is_the_version(image: str, tag: str) -> None:
    pod = injected("web", "shop", image=image, version=None)
    web = rows(pod)["shop/web"]
    assert (web.sidecar_version, web.version_source) == (tag, "image")


# --- the kinds read, and what is refused ------------------------------------------


def test_a_pod_a_podlist_and_yaml_documents() -> None:
    web = injected("web", "shop")
    assert [p["metadata"]["name"] for p in load_pods(json.dumps(web))] == ["web"]
    # the API server's PodList: its items have no kind
    items = [{k: v for k, v in p.items() if k not in ("kind", "apiVersion")}
             for p in cluster()["items"]]  # fmt: skip
    podlist = {"apiVersion": "v1", "kind": "PodList", "items": items}
    assert len(load_pods(json.dumps(podlist))) == 8
    text = yaml.safe_dump_all([cluster(), web])
    assert len(load_pods(text)) == 9
    assert load_pods(yaml.safe_dump(pod_list())) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no input: expected a Pod, a List of Pods or a PodList"),
        ("a: [1, 2\n", "neither JSON nor YAML"),
        ("just text\n", "the input is a string; expected a Pod, a List of Pods or a PodList"),
        ("[1, 2]", "the input is a list; expected a Pod"),
        ("{}", "the input is an object with no kind; expected a Pod"),
        (json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "web", "namespace": "shop"}}),
         "the input is Deployment shop/web (apps/v1); expected a Pod, a List of Pods or "
         "a PodList"),
        (json.dumps(pod_list(app_pod("a"), {"apiVersion": "v1", "kind": "Service",
                                            "metadata": {"name": "web"}})),
         "item 2 of the List is Service web (v1); expected a Pod"),
        (json.dumps({"kind": "List", "items": {"a": 1}}), "a List whose items are an object"),
        (json.dumps({"apiVersion": "example.com/v1", "kind": "Pod"}),
         "the input is Pod (unnamed) (example.com/v1); expected a core v1 Pod"),
        (json.dumps({"kind": "Pod", "metadata": {"name": "a", "annotations": {VERSION: 0.2}}}),
         "the input: Pod a: annotation pillion.dev/version is a number, not a string"),
        (json.dumps({"kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": "x"}}),
         "the input: Pod a: spec.containers is a string, not a list"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("---\nkind: Pod\n---\nkind: PodList\nitems: [{kind: Secret}]\n",
         "document 2: item 1 of the PodList is Secret (unnamed); expected a Pod"),
        ("---\nkind: Pod\n---\nkind: Secret\n",
         "document 2 is Secret (unnamed); expected a Pod, a List of Pods or a PodList"),
    ],
)  # fmt: skip
def test_what_is_not_pods_is_named(text: str, message: str) -> None:
    with pytest.raises(NotAPodList) as caught:
        load_pods(text)
    assert message in str(caught.value)


# --- summaries and rendering ------------------------------------------------------


def test_summary_per_namespace() -> None:
    summaries = {s.namespace: s for s in summarise(list(rows(cluster()).values()))}
    assert list(summaries) == ["batch", "kube-system", "shop"]
    assert summaries["shop"] == NamespaceSummary(
        namespace="shop", pods=5, injected=3, not_injected=1, not_seen=1, native=2, classic=1,
        older=1, unknown_version=0, versions={"0.1.0": 1, "0.2.0": 1, "0.3.0": 1},
        revisions={"default": 2, "canary": 1}, older_pods=["cart"],
    )  # fmt: skip
    assert summaries["batch"].unknown_version == 2
    assert summaries["batch"].versions == {"latest": 1, "unknown": 1}


def test_table() -> None:
    document = pod_list(*(p for p in cluster()["items"] if p["metadata"]["namespace"] == "shop"))
    table = render_table(pod_rows(load_pods(json.dumps(document)), "0.2.0"), "0.2.0")
    assert table.splitlines() == [
        "NAMESPACE   POD          STATUS         SIDECAR   VERSION   OLDER THAN 0.2.0   "
        "REVISION   REASON",
        "shop        cart         injected       classic   0.1.0     yes                "
        "default    -",
        "shop        legacy       not injected   -         -         -                  "
        "default    annotation pillion.dev/inject=false",
        "shop        stray        not seen       -         -         -                  "
        "-          -",
        "shop        web          injected       native    0.2.0     no                 "
        "default    -",
        "shop        web-canary   injected       native    0.3.0     no                 "
        "canary     -",
        "",
        "NAMESPACE   PODS   INJECTED   NOT INJECTED   NOT SEEN   NATIVE   CLASSIC   OLDER   "
        "UNKNOWN VERSION   VERSIONS                          REVISIONS",
        "shop        5      3          1              1          2        1         1       "
        "0                 0.1.0 (1), 0.2.0 (1), 0.3.0 (1)   default (2), canary (1)",
    ]
    assert table.endswith("canary (1)\n")


def test_table_cells_stay_on_one_line() -> None:
    reason = "bad\x1b[31m\nline"
    pod = as_listed(app_pod("odd", {STATUS: json.dumps({"injected": False, "reason": reason})}),
                    "shop")  # fmt: skip
    table = render_table(pod_rows(load_pods(json.dumps(pod)), "0.2.0"), "0.2.0")
    assert "bad?[31m?line" in table
    assert len(table.splitlines()) == 5


def test_json_shape() -> None:
    document = json.loads(render_json(list(rows(cluster()).values()), "0.2.0"))
    assert list(document) == ["older_than", "pods", "namespaces"]
    assert document["older_than"] == "0.2.0"
    assert len(document["pods"]) == 8
    cart = next(p for p in document["pods"] if p["name"] == "cart")
    assert cart == {
        "namespace": "shop", "name": "cart", "status": "injected", "reason": "injected",
        "sidecar": "classic", "sidecar_version": "0.1.0", "version_source": "image",
        "version_check": "older", "revision": "default", "injector_version": __version__,
    }  # fmt: skip
    stray = next(p for p in document["pods"] if p["name"] == "stray")
    assert stray["status"] == "not seen"
    assert stray["sidecar"] is stray["revision"] is stray["version_check"] is None
    shop = document["namespaces"][2]
    assert shop == {
        "namespace": "shop", "pods": 5, "injected": 3, "not_injected": 1, "not_seen": 1,
        "native": 2, "classic": 1, "older": 1, "unknown_version": 0,
        "versions": {"0.1.0": 1, "0.2.0": 1, "0.3.0": 1},
        "revisions": {"default": 2, "canary": 1}, "older_pods": ["cart"],
    }  # fmt: skip


# --- the command ------------------------------------------------------------------


def proxy_status(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pillion", "proxy-status", *args],
        capture_output=True, text=True, timeout=60, input=stdin, check=False,
    )  # fmt: skip


def test_cli_stdin_table() -> None:
    result = proxy_status("--older-than", "0.2.0", stdin=json.dumps(cluster(), indent=4))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:6] == ["NAMESPACE", "POD", "STATUS", "SIDECAR", "VERSION", "OLDER"]
    assert lines[1].split() == ["batch", "api", "injected", "native", "latest", "unknown",
                                "default", "-"]  # fmt: skip
    assert ["shop", "cart", "injected", "classic", "0.1.0", "yes", "default", "-"] in [
        line.split() for line in lines]  # fmt: skip
    summary = [line.split()[:2] for line in lines[lines.index("") + 2 :]]
    assert summary == [["batch", "2"], ["kube-system", "1"], ["shop", "5"]]
    assert result.stderr == ""


def test_cli_yaml_file_json_output(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text(yaml.safe_dump(cluster()))
    result = proxy_status("-f", str(path), "-o", "json", "--older-than", "0.3.0")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["older_than"] == "0.3.0"
    older = {p["name"] for p in document["pods"] if p["version_check"] == "older"}
    assert older == {"web", "cart"}
    assert [n["older_pods"] for n in document["namespaces"]] == [[], [], ["cart", "web"]]


def test_cli_default_threshold_is_this_version() -> None:
    result = proxy_status("-o", "json", stdin=json.dumps(cluster()))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["older_than"] == __version__


def test_cli_empty_list() -> None:
    empty = json.dumps(pod_list())
    table = proxy_status(stdin=empty)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("NAMESPACE   POD   STATUS")
    assert (lines[1], lines[2].split()[:2]) == ("", ["NAMESPACE", "PODS"])
    result = proxy_status("-o", "json", "--older-than", "1.0", stdin=empty)
    assert json.loads(result.stdout) == {"older_than": "1.0", "pods": [], "namespaces": []}


def test_cli_fail_if_older() -> None:
    text = json.dumps(cluster())
    older = proxy_status("--fail-if-older", "--older-than", "0.2.0", stdin=text)
    assert older.returncode == 1
    assert "cart" in older.stdout
    assert proxy_status("--fail-if-older", "--older-than", "0.1.0", stdin=text).returncode == 0


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{{{ not: [pods", "error: stdin: neither JSON nor YAML"),
        ("\x00\x01garbage", "error: stdin: "),
        ("", "error: stdin: no input"),
        (yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web", "namespace": "shop"},
                         "spec": {"template": app_pod("web")}}),
         "error: stdin: the input is Deployment shop/web (apps/v1); expected a Pod, "
         "a List of Pods or a PodList"),
    ],
)  # fmt: skip
def test_cli_not_pods_exits_2(stdin: str, message: str) -> None:
    result = proxy_status(stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stdout == ""


def test_cli_unreadable_file_and_bad_threshold_exit_2(tmp_path: Path) -> None:
    missing = proxy_status("-f", str(tmp_path / "absent.json"))
    assert missing.returncode == 2
    assert "cannot read: No such file or directory" in missing.stderr
    binary = tmp_path / "pods.bin"
    binary.write_bytes(b"\xff\xfe\x00k")
    undecodable = proxy_status("-f", str(binary))
    assert (undecodable.returncode, undecodable.stdout) == (2, "")
    assert "not UTF-8 text" in undecodable.stderr
    bad = proxy_status("--older-than", "latest", stdin=json.dumps(pod_list()))
    assert bad.returncode == 2
    assert "'latest' is not a version like 0.2.0" in bad.stderr
