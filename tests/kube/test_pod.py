"""Injected pods run on this machine (``podharness``): the kubelet's order, traffic
capture both ways, termination under load, and Jobs that complete."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pillion.kube.inject import InjectSettings, inject_pod
from tests.helpers import wait_until
from tests.kube.podharness import PILLION_IMAGE, Network, PodRun, app_container, network
from tests.secrets.servers import OpenBao, TokenReviews, service_account_token

APP = Path(__file__).with_name("podapp.py")
LOAD = Path(__file__).with_name("podload.py")
APP_UID = 1000
PASSWORD = "s3cr3t-for-the-app"


@pytest.fixture
def net() -> Iterator[Network]:
    with network() as made:
        yield made


@pytest.fixture
def openbao(net: Network, tmp_path: Path) -> Iterator[OpenBao]:
    """OpenBao on this machine's end of the link to the pod, with the kubernetes
    auth method asking a fake TokenReview API for the pod's service account."""
    with OpenBao(tmp_path / "openbao", host=net.node_ip) as server:
        yield server


def injected(
    annotations: dict[str, str],
    *containers: dict[str, Any],
    prestop_token: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                     "annotations": {"pillion.dev/inject": "true", **annotations}},
        "spec": {
            "serviceAccountName": "web",
            "securityContext": {"runAsUser": APP_UID, "runAsGroup": APP_UID},
            "containers": list(containers),
            "volumes": [{"name": "app-code", "configMap": {"name": "app-code"}}],
            **spec,
        },
    }  # fmt: skip
    settings = InjectSettings(image=PILLION_IMAGE)
    decision = inject_pod(pod, settings, "shop", {}, prestop_token)
    assert decision.injected, decision.reason
    return decision.pod


def run(pod: dict[str, Any], net: Network, token: str) -> PodRun:
    return PodRun(pod, net, config_maps={"app-code": {"podapp.py": APP.read_text()}},
                  service_account_token=token)  # fmt: skip


def metrics(net: Network) -> dict[str, float]:
    code, body = net.curl(net.pod, f"http://{net.pod_ip}:15020/metrics")
    assert code == 200, body
    found = {}
    for row in body.splitlines():
        if row and not row.startswith("#"):
            name, _, value = row.rpartition(" ")
            found[name] = float(value)
    return found


def total(found: dict[str, float], name: str, **labels: str) -> float:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        value
        for key, value in found.items()
        if key.split("{")[0] == name and all(label in key for label in wanted)
    )


def start_remote_servers(net: Network, tmp_path: Path) -> list[Any]:
    """In the remote namespace: an HTTP server, and TCP echo servers on 7000, on
    Redis' port (opaque by default) and on 7001 (excluded by the test's pod)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("hello from the remote service\n")
    echo = (
        "import socketserver,sys\n"
        "class H(socketserver.StreamRequestHandler):\n"
        "    def handle(self): self.wfile.write(b'echo ' + self.rfile.readline())\n"
        "socketserver.ThreadingTCPServer.allow_reuse_address = True\n"
        "socketserver.ThreadingTCPServer(('0.0.0.0', int(sys.argv[1])), H).serve_forever()\n"
    )
    return [
        net.popen(net.remote, sys.executable, "-m", "http.server", "8081", "--bind", "::",
                  "--directory", str(site), log=tmp_path / "remote-http.log"),
        net.popen(net.remote, sys.executable, "-c", echo, "7000", log=tmp_path / "echo.log"),
        net.popen(net.remote, sys.executable, "-c", echo, "6379", log=tmp_path / "redis.log"),
        net.popen(net.remote, sys.executable, "-c", echo, "7001", log=tmp_path / "direct.log"),
        net.popen(net.remote, sys.executable, "-m", "tests.proxy.h2upstream", "8082",
                  log=tmp_path / "remote-h2.log"),
    ]  # fmt: skip


def test_native_pod_order_secrets_and_capture_both_ways(
    net: Network, openbao: OpenBao, tmp_path: Path
) -> None:
    token, _ = service_account_token("shop", "web")
    reviews = TokenReviews(tmp_path, token, "system:serviceaccount:shop:web")
    openbao.write_policy("reader", 'path "secret/*" { capabilities = ["read"] }')
    openbao.enable_kubernetes(reviews, "web", "shop", ["reader"])
    openbao.put_kv("secret", "db", {"password": PASSWORD})
    pod = injected(
        {"pillion.dev/capture": "all", "pillion.dev/secret-db": "secret/db",
         "pillion.dev/secret-template-db": "{{ secrets.db.password }}",
         "pillion.dev/vault-address": openbao.address,
         "pillion.dev/exclude-outbound-ports": "7001"},
        app_container("serve", "8080", "--require", "/secrets/db"),
    )  # fmt: skip
    servers = start_remote_servers(net, tmp_path)
    started = run(pod, net, token)
    try:
        started.start()
        # The app started after Pillion passed its startup probe, and found its secret.
        assert started.when("probe passed pillion") < started.when("started app")
        wait_until(lambda: '"event": "started"' in started.log("app"), timeout=10)
        first = json.loads(started.log("app").splitlines()[0])
        assert first["uid"] == APP_UID
        assert first["files"][str(started.paths["/secrets"] / "db")] == PASSWORD
        info = os.stat(started.paths["/secrets"] / "db")
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1337, APP_UID, 0o440)

        # inbound: the client reaches the app on its own port, through Pillion
        app_url = f"http://{net.pod_ip}:8080/"
        assert net.curl(net.client, app_url) == (200, "hello from the app\n")
        assert total(metrics(net), "pillion_requests_total", listener="inbound") == 1

        # outbound HTTP: to where the app sent it, through the outbound listener
        remote = f"http://{net.remote_ip}:8081/"
        code, body = net.curl(net.client, f"{app_url}call?url={remote}")
        assert (code, body) == (200, "200 hello from the remote service\n")
        # outbound HTTP/2 with prior knowledge (as gRPC clients call): detected by its
        # preface, to where the app sent it, over HTTP/2 again
        h2remote = f"http://{net.remote_ip}:8082/h2"
        assert net.curl(net.client, f"{app_url}h2call?url={h2remote}") == (
            200, "connection 1 /h2 2")  # fmt: skip
        # outbound TCP, detected as not HTTP; and on an opaque port, not even waited for
        assert net.curl(net.client, f"{app_url}tcp?host={net.remote_ip}&port=7000") == (
            200, "echo ping\n")  # fmt: skip
        assert net.curl(net.client, f"{app_url}tcp?host={net.remote_ip}&port=6379") == (
            200, "echo ping\n")  # fmt: skip
        # an excluded port: straight there, not captured
        assert net.curl(net.client, f"{app_url}tcp?host={net.remote_ip}&port=7001") == (
            200, "echo ping\n")  # fmt: skip
        # IPv6 both ways: its own listeners (inbound-ipv6, outbound-ipv6), same rules
        assert net.curl(net.client, f"http://[{net.pod_ip6}]:8080/", "-g") == (
            200, "hello from the app\n")  # fmt: skip
        remote6 = f"http://[{net.remote_ip6}]:8081/"
        assert net.curl(net.client, f"{app_url}call?url={remote6}", "-g") == (
            200, "200 hello from the remote service\n")  # fmt: skip
        # a destination where nothing listens: the app gets Pillion's 503, as it would
        # have got a refusal
        code, body = net.curl(net.client, f"{app_url}call?url=http://{net.remote_ip}:9/")
        assert (code, body) == (502, "call failed: HTTP Error 503: Service Unavailable\n")
        found = metrics(net)
        captured = "pillion_outbound_captured_connections_total"
        assert total(found, captured, protocol="http", listener="outbound") == 2
        assert total(found, captured, protocol="http2", listener="outbound") == 1
        assert total(found, captured, protocol="http", listener="outbound-ipv6") == 1
        assert total(found, "pillion_requests_total", listener="inbound-ipv6") == 1
        assert total(found, "pillion_requests_total", listener="outbound-ipv6",
                     cluster="original_destination", code="200") == 1  # fmt: skip
        assert total(found, captured, protocol="tcp") == 1
        assert total(found, captured, protocol="opaque_port") == 1
        assert total(found, "pillion_requests_total", listener="outbound",
                     cluster="original_destination", code="200") == 2  # fmt: skip
        assert total(found, "pillion_requests_total", listener="outbound",
                     cluster="original_destination", code="503", flags="UF") == 1  # fmt: skip
        # Pillion's own calls (OpenBao) were not captured: only the app's six were
        assert total(found, captured) == 6
        assert total(found, "pillion_tcp_received_bytes_total", listener="outbound") == 10

        codes = started.stop()
        # native order: the app first; Pillion once the app had exited; Pillion exits 0
        assert started.when("exited app -15") < started.when("SIGTERM pillion")
        assert codes["pillion"] == 0
    finally:
        started.close()
        reviews.close()
        for server in servers:
            server.kill()
            server.wait()


@pytest.mark.parametrize("native", [True, False], ids=["native", "classic"])
def test_termination_under_load_loses_no_accepted_request(
    net: Network, tmp_path: Path, native: bool
) -> None:
    """The app's preStop hook drains Pillion's inbound side before the app is
    signalled: every request Pillion accepted is answered by the app (which, like
    most apps, dies at once on SIGTERM); later ones are refused at connect."""
    annotations = {"pillion.dev/capture": "inbound"}
    if not native:
        annotations["pillion.dev/native-sidecar"] = "false"
    pod = injected(annotations, app_container("serve", "8080"), prestop_token="t0k3n-of-the-pod")
    started = run(pod, net, "no-token")
    stop_file = tmp_path / "stop-load"
    load_log = tmp_path / "load.log"
    try:
        started.start()
        wait_until(lambda: net.curl(net.client, f"http://{net.pod_ip}:8080/")[0] == 200)
        load = net.popen(net.client, sys.executable, "-I", str(LOAD),
                         f"http://{net.pod_ip}:8080/slow?ms=50", str(stop_file),
                         log=load_log)  # fmt: skip
        # under way: requests are in flight all the time
        wait_until(lambda: total(metrics(net), "pillion_requests_total", code="200") >= 40)
        codes = started.stop(grace=30)
        stop_file.touch()
        load.wait(timeout=30)
        outcome = json.loads(load_log.read_text().splitlines()[-1])
        assert outcome["lost"] == 0, outcome
        assert outcome["ok"] >= 40
        # the hook answered once the inbound side was drained, and only then was the
        # app signalled
        assert started.when("preStop done app 200") < started.when("SIGTERM app")
        if native:
            assert started.when("exited app -15") < started.when("SIGTERM pillion")
        assert codes["pillion"] == 0
        assert "draining inbound traffic" in started.log("pillion")
        assert "t0k3n-of-the-pod" not in started.log("pillion")
    finally:
        stop_file.touch()
        started.close()


@pytest.mark.parametrize("native", [True, False], ids=["native", "classic"])
def test_a_job_pod_completes(net: Network, native: bool) -> None:
    """Native: the app exits, then the kubelet stops Pillion, which exits 0 at once.
    Classic: nothing stops Pillion; the app's exit file does (``PILLION_EXIT_FILE``)."""
    annotations = {} if native else {"pillion.dev/native-sidecar": "false"}
    job = app_container("job", "/work/out.json")
    if not native:
        job["command"] += ["--exit-file", "/var/run/pillion/exit"]
    job["volumeMounts"].append({"name": "work", "mountPath": "/work"})
    pod = injected(annotations, job, restartPolicy="Never")
    pod["spec"]["volumes"].append({"name": "work", "emptyDir": {}})
    started = run(pod, net, "no-token")
    try:
        started.start()
        codes = started.wait_completed(timeout=60)
        assert codes == {"pillion": 0, "app": 0}, {n: started.log(n) for n in codes}
        assert json.loads((started.volumes["work"] / "out.json").read_text()) == {}
        if native:
            assert started.when("exited app 0") < started.when("SIGTERM pillion")
        else:
            assert not [e for _, e in started.events if e.startswith("SIGTERM")]
            assert "exit file found" in started.log("pillion")
    finally:
        started.close()
