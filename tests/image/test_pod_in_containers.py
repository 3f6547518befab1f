"""An injected pod, run in containers from Pillion's image (``podmanpod``): the
capture init container, Pillion as a native sidecar, and the app, in one network
namespace. Requests reach the app through Pillion's inbound listener, the secret
is rendered from OpenBao before the app starts, the app's log lines reach a
receiver, ``/metrics`` passes promtool, and deleting the pod under load fails no
request Pillion accepted."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pillion.kube.inject import InjectSettings, inject_pod
from tests.helpers import wait_until
from tests.image.podman import REFERENCE
from tests.image.podmanpod import ContainerPodRun
from tests.kube.podharness import Network, app_container, network
from tests.logs.receiver import Receiver
from tests.secrets.servers import OpenBao, TokenReviews, service_account_token

pytestmark = pytest.mark.timeout(1200)  # the first test of a run waits for the build

KUBE = Path(__file__).parents[1] / "kube"
APP = KUBE / "podapp.py"
LOAD = KUBE / "podload.py"
APP_UID = 1000
PASSWORD = "s3cr3t-for-the-app"

# The ConfigMap a user would write: OpenBao on this machine (the node), the log
# receiver there too. Capture and the shared volumes come from the annotations.
CONFIG = """\
version: 1
app: {{port: 8080}}
proxy:
  inbound: [{{name: inbound}}]  # on 15006, where capture sends the app's port
secrets:
  vault:
    address: {vault}
    auth: {{method: kubernetes, role: web,
            token_file: /var/run/secrets/kubernetes.io/serviceaccount/token}}
  sources: [{{name: db, type: kv, path: secret/db}}]
  templates:
  - {{name: db, destination: /secrets/db, template: "{{{{ secrets.db.password }}}}",
      mode: "0440"}}
logs:
  inputs: [{{name: app, paths: [/var/log/app/*.log]}}]
  outputs: [{{name: receiver, type: http, url: "{receiver}"}}]
  checkpoints: /var/lib/pillion/logs.db
"""


@pytest.fixture
def net() -> Iterator[Network]:
    with network() as made:
        yield made


def injected(
    annotations: dict[str, str], app: dict[str, Any], *volumes: dict[str, Any]
) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                     "annotations": {"pillion.dev/inject": "true", **annotations}},
        "spec": {
            "serviceAccountName": "web",
            "securityContext": {"runAsUser": APP_UID, "runAsGroup": APP_UID},
            "containers": [app],
            "volumes": [{"name": "app-code", "configMap": {"name": "app-code"}}, *volumes],
        },
    }  # fmt: skip
    decision = inject_pod(pod, InjectSettings(image=REFERENCE), "shop", {}, "t0k3n-of-the-pod")
    assert decision.injected, decision.reason
    return decision.pod


def scrape(net: Network) -> str:
    code, body = net.curl(net.pod, f"http://{net.pod_ip}:15020/metrics")
    assert code == 200, body
    return body


def requests_total(exposition: str, **labels: str) -> float:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(row.rpartition(" ")[2])
        for row in exposition.splitlines()
        if row.startswith("pillion_requests_total{") and all(w in row for w in wanted)
    )


def test_the_injected_pod_serves_renders_ships_and_stops_in_containers(
    image: str, net: Network, tmp_path: Path
) -> None:
    token, _ = service_account_token("shop", "web")
    reviews = TokenReviews(tmp_path, token, "system:serviceaccount:shop:web")
    with (
        OpenBao(tmp_path / "openbao", host=net.node_ip) as openbao,
        Receiver(accepting=True, host=net.node_ip) as receiver,
    ):
        openbao.write_policy("reader", 'path "secret/*" { capabilities = ["read"] }')
        openbao.enable_kubernetes(reviews, "web", "shop", ["reader"])
        openbao.put_kv("secret", "db", {"password": PASSWORD})
        app = app_container("serve", "8080", "--require", "/secrets/db",
                            "--access-log", "/var/log/app/access.log")  # fmt: skip
        app["volumeMounts"].append({"name": "secrets", "mountPath": "/secrets"})
        pod = injected(
            {"pillion.dev/config": "web-pillion", "pillion.dev/capture": "inbound",
             "pillion.dev/logs": "/var/log/app/*.log",
             "pillion.dev/volume-mounts": "secrets:/secrets"},
            app,
            {"name": "secrets", "emptyDir": {"medium": "Memory"}},
        )  # fmt: skip
        config = CONFIG.format(vault=openbao.address, receiver=receiver.url)
        started = ContainerPodRun(
            pod, net, image=image, service_account_token=token,
            config_maps={"app-code": {"podapp.py": APP.read_text()},
                         "web-pillion": {"pillion.yaml": config}},
        )  # fmt: skip
        try:
            started.start(timeout=120)
            # Pillion passed its startup probe before the app started, and the app,
            # as its own uid, found the secret Pillion had rendered
            assert started.when("probe passed pillion") < started.when("started app")
            wait_until(lambda: '"event": "started"' in started.log("app"), timeout=30)
            first = json.loads(started.log("app").splitlines()[0])
            assert first["uid"] == APP_UID
            assert first["files"] == {"/secrets/db": PASSWORD}

            # The containers run as the manifest says, enforced by the runtime.
            pillion = started.inspect("pillion")
            # (Pillion's group is the app's, so that the 0440 secret is the app's to read)
            assert pillion["Config"]["User"] == f"1337:{APP_UID}"
            secret = os.stat(started.volumes["secrets"] / "db")
            assert (secret.st_uid, secret.st_gid, stat.S_IMODE(secret.st_mode)) == (
                1337, APP_UID, 0o440)  # fmt: skip
            assert pillion["HostConfig"]["ReadonlyRootfs"] is True
            assert pillion["EffectiveCaps"] in (None, [])
            init = started.inspect("pillion-init")
            assert sorted(init["EffectiveCaps"]) == ["CAP_NET_ADMIN", "CAP_NET_RAW"]
            assert init["State"]["ExitCode"] == 0

            # A client on the pod's network reaches the app on its own port: capture
            # sends it through Pillion's inbound listener.
            for path in ("/", "/?n=2", "/?n=3"):
                code, body = net.curl(net.client, f"http://{net.pod_ip}:8080{path}")
                assert (code, body) == (200, "hello from the app\n")
            exposition = scrape(net)
            assert requests_total(exposition, listener="inbound", code="200") == 3
            checked = subprocess.run(
                ["promtool", "check", "metrics"], input=exposition, capture_output=True,
                text=True, timeout=30, check=False,
            )  # fmt: skip
            assert checked.returncode == 0, checked.stdout + checked.stderr

            # The app's log file, on the volume it shares with Pillion, reaches the
            # receiver on the node: each line once.
            lines = ["GET /", "GET /?n=2", "GET /?n=3"]
            wait_until(lambda: all(receiver.ids()[line] for line in lines), timeout=30)
            assert [receiver.ids()[line] for line in lines] == [1, 1, 1]

            codes = started.stop()
            assert started.when("exited app 143") < started.when("SIGTERM pillion")
            assert codes["pillion"] == 0, started.log("pillion")
            assert PASSWORD not in started.log("pillion")
        finally:
            started.close()
            reviews.close()


@pytest.mark.parametrize("native", [True, False], ids=["native", "classic"])
def test_deleting_the_pod_under_load_fails_no_accepted_request(
    image: str, net: Network, tmp_path: Path, native: bool
) -> None:
    """The app's preStop hook drains Pillion's inbound side before the runtime
    signals the app (which dies at once on SIGTERM)."""
    annotations = {"pillion.dev/capture": "inbound"}
    if not native:
        annotations["pillion.dev/native-sidecar"] = "false"
    pod = injected(annotations, app_container("serve", "8080"))
    started = ContainerPodRun(pod, net, image=image,
                              config_maps={"app-code": {"podapp.py": APP.read_text()}})  # fmt: skip
    stop_file = tmp_path / "stop-load"
    load_log = tmp_path / "load.log"
    try:
        started.start(timeout=120)
        wait_until(lambda: net.curl(net.client, f"http://{net.pod_ip}:8080/")[0] == 200)
        load = net.popen(net.client, sys.executable, "-I", str(LOAD),
                         f"http://{net.pod_ip}:8080/slow?ms=50", str(stop_file),
                         log=load_log)  # fmt: skip
        wait_until(lambda: requests_total(scrape(net), code="200") >= 40)
        codes = started.stop(grace=30)
        stop_file.touch()
        load.wait(timeout=30)
        outcome = json.loads(load_log.read_text().splitlines()[-1])
        assert outcome["lost"] == 0, outcome
        assert outcome["ok"] >= 40
        assert started.when("preStop done app 200") < started.when("SIGTERM app")
        assert codes["pillion"] == 0, started.log("pillion")
        assert "draining inbound traffic" in started.log("pillion")
    finally:
        stop_file.touch()
        started.close()
